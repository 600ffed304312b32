"""State primitives behind one Protocol; back ends are siblings chosen by URL."""

from freshrec.state.base import StateStore, open_state

__all__ = ["StateStore", "open_state"]
