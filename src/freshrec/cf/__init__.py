"""Collaborative filtering: an ALS model trained from every user's interactions, served with fold-in."""

from freshrec.cf.model import CFModel
from freshrec.cf.service import CFService

__all__ = ["CFModel", "CFService"]
