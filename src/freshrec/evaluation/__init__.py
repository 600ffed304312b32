"""Offline evaluation (SPEC §8): time-ordered replay and the Microsoft Recommenders protocol."""
