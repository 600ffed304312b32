"""Demo data: a deterministic, realistic e-commerce catalog and clickstream for `freshrec demo`."""
