"""Feature views (SPEC §3), each a small declaration over the state primitives."""
