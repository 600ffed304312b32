"""The learned ranker of ``hybrid``: examples from a replay of the log, LightGBM lambdarank, serving."""
