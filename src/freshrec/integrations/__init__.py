"""Integrations with the rest of a stack: the catalog followed from PostgreSQL, features sunk into it."""
