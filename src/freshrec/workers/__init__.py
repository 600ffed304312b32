"""Several serving processes over one embedded data directory: one writer, readers following its journal."""
