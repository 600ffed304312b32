"""Feature views kept in numpy columns and applied a batch at a time (the embedded state)."""
