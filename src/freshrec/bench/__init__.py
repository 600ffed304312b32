"""``freshrec bench``: the SPEC §9 figures measured on this machine, beside SQL and a stream processor."""
