"""Exactly-once batches on Redis: the applied offset of each source partition, checked and advanced in the
``MULTI``/``EXEC`` that writes a batch's effects.

A :class:`Fence` opens a connection, ``WATCH``es the partitions' applied-offset keys (and any other key the
batch depends on), then reads the offsets. The caller drops the records below them, applies the rest through
the engine, and the engine's ``commit`` sends the batch on that connection with the new offsets in the same
transaction (:meth:`freshrec.state.redis.RedisState.commit`). If any watched key changed in between,
``EXEC`` does nothing and raises :class:`~redis.exceptions.WatchError`: another process (a new owner of the
partition, or a paused old one that resumed) applied records first, and the batch is started again from the
offsets it left. So applying a record and marking it applied is one atomic step, whatever the broker does
with its consumer group, and records are applied in offset order, each once.

With ``watch_reads`` every key the batch reads while it is open is watched before it is read: the batch
commits only if nothing it read has changed (for catalog changes, which read an item's popularity and
rewrite its rankings while workers of other partitions add to them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

#: Client methods whose first argument is the key they read (the ones RedisState reads with).
READS = frozenset(
    [
        "get",
        "mget",
        "hget",
        "hgetall",
        "hexists",
        "hmget",
        "smembers",
        "sismember",
        "zrange",
        "zscore",
        "zmscore",
        "zcard",
        "xrange",
        "xrevrange",
        "exists",
    ]
)


class Fence:
    """One batch's guard: the watched connection, the stored offsets, the offsets the batch will store."""

    def __init__(
        self, client: redis.Redis, keys: Mapping[str, str], watch: Sequence[str], watch_reads: bool
    ) -> None:
        self.keys = dict(keys)  # partition name -> its applied-offset key
        self.watch_reads = watch_reads
        self.used = False
        self.advance: dict[str, int] = {}
        self._pipe: Pipeline = client.pipeline(transaction=True)
        self._watched: set[str] = set()
        self.watch([*self.keys.values(), *watch])
        raw = self._pipe.mget(list(self.keys.values())) if self.keys else []
        self.stored: dict[str, int | None] = {
            name: None if value is None else int(value) for name, value in zip(self.keys, raw, strict=True)
        }

    def watch(self, keys: Sequence[Any]) -> None:
        new = [k for k in keys if isinstance(k, str | bytes) and k not in self._watched]
        if new and not self.used:
            cast(Any, self._pipe).watch(*new)
            self._watched.update(k if isinstance(k, str) else k.decode() for k in new)

    def execute(self, queue: Callable[[Pipeline], None]) -> list[Any]:
        """``MULTI``, what ``queue`` adds, the new offsets, ``EXEC`` (WatchError: nothing was written)."""
        self.used = True
        pipe = self._pipe
        pipe.multi()
        queue(pipe)
        if self.advance:
            pipe.mset({self.keys[name]: str(offset) for name, offset in self.advance.items()})
        return pipe.execute()

    def close(self) -> None:
        self._pipe.reset()


class FenceLocal(threading.local):
    fence: Fence | None = None


class WatchingReads:
    """A client whose reads first ``WATCH`` the key they read on ``fence``'s connection."""

    def __init__(self, client: Any, fence: Fence) -> None:
        self._client = client
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in READS:
            return method

        def read(*args: Any, **kwargs: Any) -> Any:
            if args:
                self._fence.watch([args[0]] if name != "mget" else list(args[0]))
            return method(*args, **kwargs)

        return read

    def pipeline(self, transaction: bool = True) -> WatchingPipeline:
        return WatchingPipeline(self._client.pipeline(transaction=transaction), self._fence)


class WatchingPipeline:
    """A read pipeline that watches the keys of its queued commands before it sends them."""

    def __init__(self, pipe: Any, fence: Fence) -> None:
        self._pipe = pipe
        self._fence = fence
        self._keys: list[Any] = []

    def __enter__(self) -> WatchingPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.reset()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pipe, name)
        if name not in READS:
            return method

        def queue(*args: Any, **kwargs: Any) -> Any:
            if args:
                self._keys.append(args[0])
            return method(*args, **kwargs)

        return queue

    def execute(self) -> list[Any]:
        self._fence.watch(self._keys)
        result: list[Any] = self._pipe.execute()
        return result
