"""Strategies: candidates from indexes, scores, filters, explanations (SPEC §4)."""
