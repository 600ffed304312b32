"""The keys of experiments in distributed mode: each user's live exposures and first-seen marks.

Both carry the user as their hash tag, beside the user's other state::

    P:{xp|user}:e    hash, field "e": the user's live exposures (JSON, see freshrec.experiments.shared);
                     expires two metric windows after its last write, when no event can credit them
    P:{xp|user}:m    set of "experiment NUL variant" the user was exposed to (counts distinct users);
                     expires with the user's state when ``retention.user_ttl_days`` is set

Writes go into the open batch like every other write, so a worker's fenced transaction holds the
exposures, the credits and the tallies of its records with their applied offsets
(:mod:`freshrec.state.redis_fence`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from freshrec.state import redis_codec as rc


class ExposureKeys:
    """Mixed into :class:`freshrec.state.redis.RedisState`."""

    _p: str
    _local: threading.local
    _ttl_ms: int
    _expiring: tuple[str, ...]

    if TYPE_CHECKING:

        @property
        def _r(self) -> rc.Client: ...

        def _ops(self, rkey: str) -> list[rc.Op] | None: ...

        def _writing(self) -> AbstractContextManager[rc.Batch]: ...

    def _exposed_key(self, user_id: str) -> str:
        return f"{self._p}:{{xp|{rc.esc(user_id)}}}:e"

    def _marks_key(self, user_id: str) -> str:
        return f"{self._p}:{{xp|{rc.esc(user_id)}}}:m"

    def exposures_of(self, user_ids: Sequence[str]) -> dict[str, tuple[bytes | None, set[str]]]:
        """Each user's live-exposure document and marks, as this thread's open batch leaves them."""
        if not user_ids:
            return {}
        with self._r.pipeline(transaction=False) as p:
            for user in user_ids:
                p.hget(self._exposed_key(user), b"e")
                p.smembers(self._marks_key(user))
            raw = p.execute()
        out: dict[str, tuple[bytes | None, set[str]]] = {}
        for n, user in enumerate(user_ids):
            doc: bytes | None = raw[2 * n]
            for _, value in self._ops(self._exposed_key(user)) or ():
                doc = value
            marks = {m.decode() for m in raw[2 * n + 1]}
            marks.update(op[0] for op in self._ops(self._marks_key(user)) or ())
            out[user] = (doc, marks)
        return out

    def exposures_put(self, user_id: str, doc: bytes | None, ttl_seconds: float) -> None:
        """Replace the user's live-exposure document (None: delete it); it expires ``ttl_seconds`` on."""
        rkey = self._exposed_key(user_id)
        with self._writing() as batch:
            batch.log("docs", rkey, ("e", doc))
            if doc is not None:
                batch.ttls[rkey] = max(1, round(ttl_seconds * 1000))

    def exposure_mark(self, user_id: str, mark: str) -> None:
        rkey = self._marks_key(user_id)
        with self._writing() as batch:
            batch.log("set", rkey, (mark,))
            if self._expiring:
                batch.ttls[rkey] = self._ttl_ms

    def before_next_commit(self, write: Callable[[], None]) -> AbstractContextManager[None]:
        """Run ``write`` at the start of this thread's next ``commit`` (its writes join that batch);
        forgotten when the block ends, whether or not a commit came."""
        return _Hook(self._local, write)

    def _before_commit(self) -> None:
        hooks: list[Callable[[], None]] | None = getattr(self._local, "hooks", None)
        if hooks:
            self._local.hooks = []
            for hook in hooks:
                hook()


class _Hook(AbstractContextManager[None]):
    def __init__(self, local: threading.local, write: Callable[[], None]) -> None:
        self.local = local
        self.write = write

    def __enter__(self) -> None:
        self.local.hooks = [*getattr(self.local, "hooks", []), self.write]

    def __exit__(self, *exc: object) -> None:
        hooks = getattr(self.local, "hooks", [])
        self.local.hooks = [h for h in hooks if h is not self.write]
