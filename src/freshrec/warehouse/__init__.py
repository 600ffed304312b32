"""Warehouse files in and out: backfill events from Parquet, CSV and JSON Lines; export any view."""
