"""The state Protocol: the few primitives every feature view is written on.

Every primitive is addressed by a namespace (one per view), a ``key`` (the entity that owns the data: a
user or an item, so a back end can co-locate it, e.g. one Redis hash tag per key) and a ``member`` inside
it. Writes never return data the caller must wait for, except :meth:`StateStore.add_distinct`, whose
"was it new" answer a networked back end computes inside the same server-side script as the writes that
depend on it. Writes of one batch happen between :meth:`StateStore.begin` and :meth:`StateStore.commit`,
which a networked back end turns into one pipelined, atomic round trip.

Primitives:

* **counters** — per ``(key, member)`` a small hash of numeric fields (``add``, ``put_max``,
  ``add_decayed`` for exponentially decayed sums kept exact for out-of-order arrivals);
* **windowed counters** — the same, per window start, with expiry of whole windows (``window_add``);
* **distinct sets** — ``add_distinct`` answers whether the value was new (optionally per window);
* **rankings** — scored sets read in ``score desc, member asc`` order (``rank_add``, ``rank_iter``);
* **bounded lists** — the ``cap`` largest entries by a sort key (``push_bounded``);
* **sets** — plain membership (``set_add``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

Fields = Mapping[str, float]


class LogGap(LookupError):
    """A change log no longer holds the position asked for (it was trimmed): read everything again."""


class StateStore(Protocol):
    """Storage of feature-view state. Implementations: :mod:`freshrec.state.memory`."""

    # -- batches ------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Start a batch of writes."""

    def commit(self) -> None:
        """Make the batch's writes visible together."""

    # -- counters -----------------------------------------------------------------------------------
    def add(self, ns: str, key: str, member: Hashable, deltas: Fields) -> None:
        """Add ``deltas`` to the fields of ``(key, member)``, creating them at 0."""

    def put_max(self, ns: str, key: str, member: Hashable, field: str, value: float) -> None:
        """Set ``field`` to ``max(current, value)``."""

    def add_decayed(
        self, ns: str, key: str, member: Hashable, field: str, value: float, ts: float, half_life: float
    ) -> None:
        """Add ``value`` observed at ``ts`` to an exponentially decayed sum (any arrival order)."""

    def read_decayed(
        self, ns: str, key: str, member: Hashable, field: str, now: float, half_life: float
    ) -> float:
        """The decayed sum of ``field`` as of ``now``: Σ value · 2^(−(now − ts)/half_life)."""
        ...

    def fields(self, ns: str, key: str, member: Hashable) -> Fields | None:
        """The fields of ``(key, member)``, or None."""
        ...

    def fields_of_keys(self, ns: str, keys: Sequence[str], member: Hashable) -> list[Fields | None]:
        """:meth:`fields` of ``member`` under each of ``keys`` (one round trip on a networked store)."""
        ...

    def members(self, ns: str, key: str) -> Mapping[Hashable, Fields]:
        """Every member of ``key`` with its fields."""
        ...

    def keys(self, ns: str) -> Iterable[str]:
        """Every key of a namespace (for full reads of a view)."""
        ...

    # -- windowed counters --------------------------------------------------------------------------
    def window_add(self, ns: str, key: str, member: Hashable, window_start: float, deltas: Fields) -> None:
        """Add ``deltas`` to ``(key, member)`` in the window starting at ``window_start``."""

    def window_members(self, ns: str, key: str) -> Mapping[tuple[Hashable, float], Fields]:
        """Every ``(member, window_start)`` of ``key`` with its fields."""
        ...

    def window_keys(self, ns: str, window_start: float) -> Iterable[str]:
        """Keys that have data in the window starting at ``window_start``."""
        ...

    def window_starts(self, ns: str) -> Iterable[float]:
        """Starts of the windows that hold data."""
        ...

    def expire_windows(self, ns: str, before: float) -> None:
        """Drop every window (counters, distinct sets, rankings) starting before ``before``."""

    # -- distinct sets ------------------------------------------------------------------------------
    def add_distinct(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_start: float | None = None
    ) -> bool:
        """Add ``value`` to the set of ``(key, member[, window])``; True when it was not there."""
        ...

    def add_distinct_windows(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_starts: Sequence[float]
    ) -> list[bool]:
        """:meth:`add_distinct` in each of several windows at once (one round trip on a networked store)."""
        ...

    def count_distinct(self, ns: str, key: str, member: Hashable, window_start: float | None = None) -> int:
        """Size of the set of ``(key, member[, window])``."""
        ...

    # -- rankings -----------------------------------------------------------------------------------
    def rank_add(
        self, ns: str, ranking: Hashable, member: str, delta: float, window_start: float | None = None
    ) -> None:
        """Add ``delta`` to ``member``'s score in ``ranking`` (expired with its window, if given)."""

    def rank_score(self, ns: str, ranking: Hashable, member: str) -> float | None:
        """``member``'s score in ``ranking``, or None."""
        ...

    def rank_scores(self, ns: str, rankings: Sequence[Hashable], member: str) -> list[float | None]:
        """:meth:`rank_score` of ``member`` in each of ``rankings`` (one round trip on a networked store)."""
        ...

    def rank_iter(self, ns: str, ranking: Hashable) -> Iterator[tuple[str, float]]:
        """``(member, score)`` in score-descending, member-ascending order."""
        ...

    def rank_names(self, ns: str) -> Iterable[Hashable]:
        """The rankings of a namespace (for full reads of a view)."""
        ...

    def rank_size(self, ns: str, ranking: Hashable) -> int:
        """Members in ``ranking``."""
        ...

    def rank_remove(self, ns: str, ranking: Hashable, member: str) -> None:
        """Remove ``member`` from ``ranking``."""

    # -- bounded lists ------------------------------------------------------------------------------
    def push_bounded(self, ns: str, key: str, sort_key: Any, value: Any, cap: int) -> None:
        """Keep the ``cap`` entries with the largest ``sort_key`` (ties: first in stays)."""

    def bounded(self, ns: str, key: str) -> Sequence[Any]:
        """Values of ``key``, largest sort key first."""
        ...

    # -- sets ---------------------------------------------------------------------------------------
    def set_add(self, ns: str, key: str, value: str) -> None:
        """Add ``value`` to the set ``key``."""

    def set_members(self, ns: str, key: str) -> frozenset[str] | set[str]:
        """Members of the set ``key`` (empty when none)."""
        ...

    # -- timelines ----------------------------------------------------------------------------------
    def timeline_add(self, ns: str, key: str, ts: float, value: str) -> None:
        """Add ``value`` at time ``ts`` to the timeline ``key`` (a sorted set by time in Redis)."""

    def timeline_range(self, ns: str, key: str, low: float, high: float) -> list[tuple[float, str]]:
        """Entries with ``low <= ts <= high``, in time order (equal times: in the order added)."""
        ...

    def timeline_window(
        self, ns: str, key: str, low: float, high: float
    ) -> tuple[list[tuple[float, str]], float | None]:
        """:meth:`timeline_range` and :meth:`timeline_last` together (one round trip on a networked store)."""
        ...

    def timeline_trim(self, ns: str, key: str, before: float) -> None:
        """Drop the entries of ``key`` older than ``before``."""

    def timeline_last(self, ns: str, key: str) -> float | None:
        """The largest time in the timeline, or None when it is empty."""
        ...

    # -- idempotency --------------------------------------------------------------------------------
    def seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied (and is still remembered)."""
        ...

    def seen_among(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` that were applied (one round trip on a networked store)."""
        ...

    def mark_seen(self, event_id: str, ts: float) -> None:
        """Remember that ``event_id`` was applied; forgotten after the dedup retention."""

    def forget_seen_before(self, ts: float) -> None:
        """Forget event ids marked with a time before ``ts``."""

    def seen_count(self) -> int:
        """How many event ids are remembered."""
        ...

    def forget_seen_beyond(self, keep: int) -> None:
        """Keep only the ``keep`` event ids marked with the latest times."""

    # -- documents and change logs (the catalog and models a distributed deployment shares) ----------
    def doc_put(self, ns: str, key: str, value: bytes | None) -> None:
        """Store ``value`` under ``key`` (None removes it)."""

    def doc_get(self, ns: str, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        ...

    def docs(self, ns: str) -> dict[str, bytes]:
        """Every key of ``ns`` with its value."""
        ...

    def log_append(self, ns: str, value: bytes) -> None:
        """Append ``value`` to the change log ``ns``."""

    def log_tail(self, ns: str) -> str:
        """The position after the newest entry (where a reader starting now begins)."""
        ...

    def log_read(self, ns: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Up to ``limit`` entries after position ``after``, oldest first, each with its own position;
        :class:`LogGap` when entries after ``after`` were trimmed away."""
        ...

    # -- whole-state ---------------------------------------------------------------------------------
    def dump(self) -> bytes:
        """The whole state, for a snapshot."""
        ...

    def load(self, blob: bytes) -> None:
        """Replace the whole state by a :meth:`dump`."""

    def stats(self) -> dict[str, int]:
        """Sizes for metrics: keys per namespace and such."""
        ...


def open_state(url: str) -> StateStore:
    """A state back end from its URL: ``memory://`` (default) or ``redis://host:port/db[?prefix=name]``.

    ``redis://`` (also ``rediss://``, ``unix://``, ``valkey[s]://``) is Redis ≥ 7 or Valkey, see
    :mod:`freshrec.state.redis`; ``prefix`` (default ``freshrec``) starts every key, so several stores can
    share one database.
    """
    if url in ("memory://", "memory", ""):
        from freshrec.state.memory import MemoryState

        return MemoryState()
    scheme = url.split("://", 1)[0]
    if scheme in ("redis", "rediss", "unix", "valkey", "valkeys"):
        try:
            from freshrec.state.redis import RedisState
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] != "redis":
                raise
            raise ImportError(
                f"state URL {url!r} needs the Redis client: pip install 'freshrec[distributed]'"
            ) from exc
        return RedisState.from_url(url)
    raise ValueError(
        f"unsupported state URL {url!r} (scheme {scheme!r}); supported: memory://, redis[s]://, unix://"
    )
