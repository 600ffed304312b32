"""Embedded durability: the append-only log, snapshots, and the data directory that holds them."""
