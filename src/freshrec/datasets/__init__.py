"""Readers of event and item files: freshrec JSON lines / CSV, and the DataSQRL clickstream example."""
