"""The networked state back end: Redis ≥ 7 or Valkey, for the distributed mode (``redis://host:port/db``).

Several engine workers share one state: each applies the events of the users it owns and all read it.
:class:`RedisState` gives the same answers as :class:`freshrec.state.memory.MemoryState` (the reference
semantics; the conformance suite runs on both) with these guarantees:

* **Atomic batches.** Writes between :meth:`RedisState.begin` and :meth:`RedisState.commit` are buffered by
  Redis key, in call order, and sent at ``commit`` as one ``MULTI``/``EXEC`` in which each key's writes are
  one Lua call (a few thousand commands for 500 events, not one per primitive call): other clients see all
  of a batch or none of it, and a crash before ``EXEC`` leaves nothing. The event ids of the batch
  (``mark_seen``) are in the same transaction, so re-applying a batch whose ``EXEC`` reply was lost is a
  no-op; for that reason clients made by :meth:`RedisState.from_url` never retry a command by themselves.
  Inside :meth:`RedisState.fenced` the batch also stores the applied offsets of the log partitions it came
  from, and commits only if they (and what else the fence watches) did not change since they were read:
  each record of a partitioned log is applied exactly once (:mod:`freshrec.state.redis_fence`).
  A write outside a batch is a batch of one, sent at once. ``begin`` drops a batch never committed.
* **Read-your-writes.** Reads made while a batch is open (the engine reads user state while applying it)
  return the Redis value combined with the batch's pending writes, replayed in order with the same
  arithmetic as the server-side scripts (:mod:`freshrec.state.redis_codec`); change-log entries alone get
  their position, and become readable, at ``commit``. ``add_distinct`` answers "was it new" at call time
  from that view. This check-then-write is race-free because the engine partitions writers by user: one
  user's events are applied by one worker at a time. A batch is private to the thread that began it.
* **Exact numbers.** Read-modify-writes run as Lua scripts in double precision, with values kept as
  round-trip text, so counters, maxima and decayed sums equal the in-memory store's.
* **Maintenance** (``expire_windows``, ``forget_seen_*``, ``dump``, ``load``) works on committed state: inside
  a batch it commits what is pending first. Window expiry reads small per-namespace indexes (no ``KEYS``,
  no ``SCAN``) and deletes under ``WATCH``, retrying if a writer touched an index meanwhile.

Key layout, under ``prefix`` (``?prefix=`` in the URL; one prefix per independent store; ``{…}`` is the hash
tag, ``enc`` the JSON of :mod:`freshrec.state.redis_codec`)::

    P:{ns|key}:c             hash  counters: "enc(member) NUL field" -> value
    P:{ns|key}:d             hash  decayed sums: "enc(member) NUL field" -> "value ref_time"
    P:{ns|key}:w:<start>     hash  windowed counters of one window, same fields
    P:{ns|key}:x:<start|->   hash  distinct sets of one window (or none): v+member+value, n+member -> size
    P:{ns|key}:b, :bv, :bq   zset of sort-key bytes + tag / hash tag -> pickled value / sequence
    P:{ns|key}:t             set   plain set
    P:{ns|key}:l, :lq        zset  timeline (score = time, member = sequence + value) / sequence
    P:{ns|enc(ranking)}:r    zset  ranking, scores negated (ZRANGE ascending = score desc, member asc)
    P:{ns}:keys, :wkeys      set of keys with lifetime data / zset of keys by newest window start
    P:{ns}:ws, :wk:<start>   zset of window starts holding data / set of their keys per window
    P:{ns}:rn, :rws, :rw:<s> set of ranking names / zset, sets of the rankings per window
    P:{ns}:docs, :log        hash of documents / stream (the change log)
    P:seen, P:namespaces     zset of event ids by time applied / set of namespaces
    P:{xp|user}:e, :m        hash of the user's live exposures / set of first-seen marks (experiments)

Every key of one entity (a user or item ``key``, or a ``ranking``) carries the entity as its hash tag, so
its data lands on one Redis Cluster slot. A batch's ``MULTI``/``EXEC`` spans many entities, hence slots:
this version targets single-node Redis/Valkey (≥ 7, or a primary with replicas); on a cluster a batch would
have to be split per slot, giving up atomicity across entities.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import WatchError
from redis.retry import Retry

from freshrec.state import redis_codec as rc
from freshrec.state.base import Fields, LogGap
from freshrec.state.redis_exposures import ExposureKeys
from freshrec.state.redis_fence import Fence, FenceLocal, WatchingReads

_DUMP_FORMAT = "freshrec.state.redis/1"
_EXPIRE_ATTEMPTS = 50


class RedisState(ExposureKeys):
    """All state primitives of :class:`freshrec.state.base.StateStore` in Redis / Valkey."""

    def __init__(self, client: redis.Redis, prefix: str = "freshrec") -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"invalid key prefix {prefix!r}")
        self._client = client
        self._p = prefix
        self._seen = f"{prefix}:seen"
        self._nss = f"{prefix}:namespaces"
        self._local = threading.local()
        self._fences = FenceLocal()
        self._expiring: tuple[str, ...] = ()  # entity-key prefixes of the namespaces given a TTL
        self._ttl_ms = 0

    @property
    def _r(self) -> rc.Client:
        """The client reads go through: inside a fence that watches reads, one that does."""
        fence = self._fences.fence
        if fence is not None and fence.watch_reads and not fence.used:
            return cast(rc.Client, WatchingReads(self._client, fence))
        return cast(rc.Client, self._client)

    @classmethod
    def from_url(cls, url: str) -> RedisState:
        """``redis://host:port/db?prefix=name`` (also ``rediss://``, ``unix://``, ``valkey[s]://``)."""
        parts = urlsplit(url)
        if parts.scheme in ("valkey", "valkeys"):
            parts = parts._replace(scheme=parts.scheme.replace("valkey", "redis"))
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), "freshrec")
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        client = redis.Redis.from_url(
            rest, retry=Retry(NoBackoff(), 0), socket_connect_timeout=10.0, socket_timeout=60.0
        )
        return cls(client, prefix)

    # -- keys, batches and the write buffer -----------------------------------------------------------
    def _k(self, ns: str, key: str, kind: str) -> str:
        return f"{self._p}:{{{rc.esc(ns)}|{rc.esc(key)}}}:{kind}"

    def _n(self, ns: str, kind: str) -> str:
        return f"{self._p}:{{{rc.esc(ns)}}}:{kind}"

    def _rk(self, ns: str, name: bytes) -> str:
        return f"{self._p}:{{{rc.esc(ns)}|{rc.esc(name.decode())}}}:r"

    @property
    def _batch(self) -> rc.Batch | None:
        batch: rc.Batch | None = getattr(self._local, "batch", None)
        return batch

    @contextmanager
    def _writing(self) -> Iterator[rc.Batch]:
        """The open batch, or a batch of this one write, sent at once."""
        batch = self._batch
        if batch is not None:
            yield batch
            return
        batch = rc.Batch()
        yield batch
        self._send(batch)

    def _ops(self, rkey: str) -> list[rc.Op] | None:
        batch = self._batch
        return None if batch is None else batch.ops.get(rkey)

    def _pending_index(self, index: str) -> dict[str, float | None]:
        batch = self._batch
        return {} if batch is None else batch.index.get(index, {})

    def _owned(self, batch: rc.Batch, ns: str, key: str) -> None:
        batch.add_index(self._n(ns, "keys"), key)
        batch.add_index(self._nss, ns)

    def _send(self, batch: rc.Batch) -> list[Any]:
        with self._client.pipeline(transaction=True) as p:
            self._queue(p, batch)
            return p.execute()

    def _queue(self, pipe: Any, batch: rc.Batch) -> None:
        """The batch's commands, then (retention) a fresh expiry on every key of an expiring namespace
        it wrote, inside the same transaction."""
        rc.queue(pipe, batch, self._seen)
        if not self._expiring:
            return
        for rkey, (_, extra) in batch.kinds.items():
            if rkey.startswith(self._expiring):
                entity = rkey[: rkey.index("}:") + 2]
                for key in (rkey, *(k for k in extra if k.startswith(entity))):
                    pipe.pexpire(key, self._ttl_ms)

    def expire_keys_after(self, namespaces: Iterable[str], seconds: float) -> None:
        """Let every key of ``namespaces`` (views keyed by user) expire ``seconds`` after its last write:
        an idle user's state leaves Redis by itself (Redis's clock; see docs/state.md)."""
        self._expiring = tuple(f"{self._p}:{{{rc.esc(ns)}|" for ns in namespaces)
        self._ttl_ms = max(1, round(seconds * 1000))

    @contextmanager
    def _committed(self) -> Iterator[None]:
        reopen = self._batch is not None
        self.commit()
        yield
        if reopen:
            self.begin()

    # -- batches ------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Start a batch (dropping one that was begun and never committed)."""
        self._local.batch = rc.Batch()

    def commit(self) -> None:
        """Send the batch as one MULTI/EXEC (inside :meth:`fenced`: with its offsets, or not at all)."""
        batch = self._batch
        if batch is None:
            return
        self._before_commit()  # writes that belong to this batch (ExposureKeys.before_next_commit)
        self._local.batch = None
        fence = self._fences.fence
        if fence is not None and not fence.used:
            fence.execute(lambda pipe: self._queue(pipe, batch))
        else:
            self._send(batch)

    # -- exactly-once application of a partitioned log (see freshrec.state.redis_fence) -------------
    def _offset_key(self, partition: str) -> str:
        return f"{self._p}:{{applied|{rc.esc(partition)}}}:offset"

    def applied_offsets(self, partitions: Sequence[str]) -> dict[str, int | None]:
        """The next offset to apply of each partition (``None``: nothing applied from it yet)."""
        raw = self._client.mget([self._offset_key(p) for p in partitions]) if partitions else []
        return {p: None if v is None else int(v) for p, v in zip(partitions, raw, strict=True)}

    @contextmanager
    def fenced(
        self, partitions: Sequence[str], *, watch_logs: Sequence[str] = (), watch_reads: bool = False
    ) -> Iterator[Fence]:
        """Guard the next batch committed in this thread by the partitions' applied offsets.

        Yields the :class:`Fence` (``stored`` offsets, read after ``WATCH``; set ``advance`` to the offsets
        the batch leaves). The batch's ``commit`` writes effects and offsets in one transaction; when the
        block ends without a commit, the offsets are stored alone. Either raises ``WatchError`` (nothing
        written) when another client changed a watched key: the applied offsets, the change logs named in
        ``watch_logs``, or, with ``watch_reads``, any key read meanwhile.
        """
        keys = {p: self._offset_key(p) for p in partitions}
        fence = Fence(self._client, keys, [self._n(ns, "log") for ns in watch_logs], watch_reads)
        self._fences.fence = fence
        try:
            yield fence
            if not fence.used and fence.advance:
                fence.execute(lambda pipe: None)
        finally:
            self._fences.fence = None
            fence.close()

    # -- counters -----------------------------------------------------------------------------------
    def _counters(self, batch: rc.Batch, rkey: str, member: Hashable, deltas: Fields) -> None:
        m = rc.enc(member)
        for name, delta in deltas.items():
            batch.log("hash", rkey, ("+", rc.counter_field(m, name), float(delta)))
        if not deltas:
            batch.log("hash", rkey, ("m", m))

    def add(self, ns: str, key: str, member: Hashable, deltas: Fields) -> None:
        with self._writing() as batch:
            self._counters(batch, self._k(ns, key, "c"), member, deltas)
            self._owned(batch, ns, key)

    def put_max(self, ns: str, key: str, member: Hashable, field: str, value: float) -> None:
        with self._writing() as batch:
            batch.log(
                "hash", self._k(ns, key, "c"), ("^", rc.counter_field(rc.enc(member), field), float(value))
            )
            self._owned(batch, ns, key)

    def add_decayed(
        self, ns: str, key: str, member: Hashable, field: str, value: float, ts: float, half_life: float
    ) -> None:
        name = rc.counter_field(rc.enc(member), field)
        with self._writing() as batch:
            batch.log("decay", self._k(ns, key, "d"), (name, float(value), float(ts), float(half_life)))
            self._owned(batch, ns, key)

    def read_decayed(
        self, ns: str, key: str, member: Hashable, field: str, now: float, half_life: float
    ) -> float:
        rkey, name = self._k(ns, key, "d"), rc.counter_field(rc.enc(member), field)
        entry = rc.parse_decayed(self._r.hget(rkey, name))
        ops = self._ops(rkey)
        if ops:
            entry = rc.apply_decay_ops(entry, [op for op in ops if op[0] == name])
        return 0.0 if entry is None else entry[0] * math.pow(2.0, -(now - entry[1]) / half_life)

    def _hash(self, rkey: str, raw: dict[bytes, bytes]) -> dict[bytes, float | None]:
        values = rc.hash_values(raw)
        ops = self._ops(rkey)
        if ops:
            rc.apply_hash_ops(values, ops)
        return values

    def fields(self, ns: str, key: str, member: Hashable) -> Fields | None:
        rkey, m = self._k(ns, key, "c"), rc.enc(member)
        found = rc.decode_counters(self._hash(rkey, self._r.hgetall(rkey)), m)
        return next(iter(found.values()), None)

    def fields_of_keys(self, ns: str, keys: Sequence[str], member: Hashable) -> list[Fields | None]:
        m = rc.enc(member)
        rkeys = [self._k(ns, key, "c") for key in keys]
        pipe = self._r.pipeline(transaction=False)
        for rkey in rkeys:
            pipe.hgetall(rkey)
        out: list[Fields | None] = []
        for rkey, raw in zip(rkeys, pipe.execute() if rkeys else [], strict=True):
            found = rc.decode_counters(self._hash(rkey, raw), m)
            out.append(next(iter(found.values()), None))
        return out

    def members(self, ns: str, key: str) -> Mapping[Hashable, Fields]:
        rkey = self._k(ns, key, "c")
        return rc.decode_counters(self._hash(rkey, self._r.hgetall(rkey)))

    def keys(self, ns: str) -> Iterable[str]:
        lifetime, windowed = self._n(ns, "keys"), self._n(ns, "wkeys")
        with self._r.pipeline(transaction=False) as p:
            p.smembers(lifetime)
            p.zrange(windowed, 0, -1)
            got = p.execute()
        found = {k.decode() for k in got[0]} | {k.decode() for k in got[1]}
        found.update(self._pending_index(lifetime), self._pending_index(windowed))
        return sorted(found)

    # -- windowed counters --------------------------------------------------------------------------
    def window_add(self, ns: str, key: str, member: Hashable, window_start: float, deltas: Fields) -> None:
        start = rc.fnum(window_start)
        with self._writing() as batch:
            self._counters(batch, self._k(ns, key, "w:" + start), member, deltas)
            self._window_index(batch, ns, key, start)
            batch.add_index(self._n(ns, "wkeys"), key, float(window_start))

    def _window_index(self, batch: rc.Batch, ns: str, key: str, start: str) -> None:
        batch.add_index(self._n(ns, "wk:" + start), key)
        batch.add_index(self._n(ns, "ws"), start, float(start))
        batch.add_index(self._nss, ns)

    def _starts(self, ns: str) -> dict[str, float]:
        index = self._n(ns, "ws")
        starts = {m.decode(): s for m, s in self._r.zrange(index, 0, -1, withscores=True)}
        starts.update((m, s) for m, s in self._pending_index(index).items() if s is not None)
        return starts

    def window_members(self, ns: str, key: str) -> Mapping[tuple[Hashable, float], Fields]:
        starts = sorted(self._starts(ns).items(), key=lambda kv: kv[1])
        rkeys = [self._k(ns, key, "w:" + s) for s, _ in starts]
        with self._r.pipeline(transaction=False) as p:
            for rkey in rkeys:
                p.hgetall(rkey)
            raws = p.execute()
        out: dict[tuple[Hashable, float], Fields] = {}
        for (_, start), rkey, raw in zip(starts, rkeys, raws, strict=True):
            for member, fields in rc.decode_counters(self._hash(rkey, raw)).items():
                out[(member, start)] = fields
        return out

    def window_keys(self, ns: str, window_start: float) -> Iterable[str]:
        index = self._n(ns, "wk:" + rc.fnum(window_start))
        found = {k.decode() for k in self._r.smembers(index)}
        found.update(self._pending_index(index))
        return sorted(found)

    def window_starts(self, ns: str) -> Iterable[float]:
        return sorted(self._starts(ns).values())

    def expire_windows(self, ns: str, before: float) -> None:
        with self._committed():
            for _ in range(_EXPIRE_ATTEMPTS):
                try:
                    self._expire(ns, f"({before!r}")
                    return
                except WatchError:
                    continue
        raise RuntimeError(f"expire_windows({ns!r}) kept conflicting with concurrent writers")

    def _expire(self, ns: str, bound: str) -> None:
        """One attempt: read the indexes of the windows to drop under WATCH, then delete in MULTI/EXEC."""
        starts, rstarts = self._n(ns, "ws"), self._n(ns, "rws")
        with self._client.pipeline(transaction=True) as tx:
            watch = cast(Any, tx).watch
            watch(starts, rstarts)
            old = [s.decode() for s in self._r.zrange(starts, "-inf", bound, byscore=True)]
            rold = [s.decode() for s in self._r.zrange(rstarts, "-inf", bound, byscore=True)]
            if not old and not rold:
                return
            indexes = [self._n(ns, "wk:" + s) for s in old] + [self._n(ns, "rw:" + s) for s in rold]
            watch(*indexes)
            with self._r.pipeline(transaction=False) as read:
                for index in indexes:
                    read.smembers(index)
                sets = read.execute()
            tx.multi()
            for start, keys in zip(old, sets[: len(old)], strict=True):
                for key in keys:
                    tx.unlink(
                        self._k(ns, key.decode(), "w:" + start), self._k(ns, key.decode(), "x:" + start)
                    )
            names = [n for names in sets[len(old) :] for n in names]
            for name in names:
                tx.unlink(self._rk(ns, name))
            if names:
                tx.srem(self._n(ns, "rn"), *names)
            tx.unlink(*indexes)
            for index in (starts, rstarts, self._n(ns, "wkeys")):
                tx.zremrangebyscore(index, "-inf", bound)
            tx.execute()

    # -- distinct sets ------------------------------------------------------------------------------
    def _distinct(self, ns: str, key: str, member: Hashable, window_start: float | None) -> tuple[str, bytes]:
        start = "-" if window_start is None else rc.fnum(window_start)
        return self._k(ns, key, "x:" + start), rc.enc(member)

    def add_distinct(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_start: float | None = None
    ) -> bool:
        rkey, m = self._distinct(ns, key, member, window_start)
        op = (b"v" + m + b"\x00" + rc.enc(value), b"n" + m)
        batch = self._batch
        if batch is not None and (op in batch.ops.get(rkey, ()) or self._r.hexists(rkey, op[0])):
            return False
        alone = batch is None
        batch = rc.Batch() if batch is None else batch
        batch.log("distinct", rkey, op)
        if window_start is None:
            batch.add_index(self._nss, ns)
        else:
            self._window_index(batch, ns, key, rc.fnum(window_start))
        return bool(self._send(batch)[0]) if alone else True

    def add_distinct_windows(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_starts: Sequence[float]
    ) -> list[bool]:
        batch = self._batch
        if batch is None:
            return [self.add_distinct(ns, key, member, value, start) for start in window_starts]
        wanted = []
        for start in window_starts:
            rkey, m = self._distinct(ns, key, member, start)
            wanted.append((rkey, (b"v" + m + b"\x00" + rc.enc(value), b"n" + m), start))
        pipe = self._r.pipeline(transaction=False)
        for rkey, op, _ in wanted:
            pipe.hexists(rkey, op[0])
        stored = pipe.execute()
        out: list[bool] = []
        for (rkey, op, start), there in zip(wanted, stored, strict=True):
            if there or op in batch.ops.get(rkey, ()):
                out.append(False)
                continue
            batch.log("distinct", rkey, op)
            self._window_index(batch, ns, key, rc.fnum(start))
            out.append(True)
        return out

    def count_distinct(self, ns: str, key: str, member: Hashable, window_start: float | None = None) -> int:
        rkey, m = self._distinct(ns, key, member, window_start)
        nfield = b"n" + m
        stored = self._r.hget(rkey, nfield)
        pending = sum(1 for op in self._ops(rkey) or () if op[1] == nfield)
        return int(stored or 0) + pending

    # -- rankings -----------------------------------------------------------------------------------
    def rank_add(
        self, ns: str, ranking: Hashable, member: str, delta: float, window_start: float | None = None
    ) -> None:
        name = rc.enc(ranking)
        start = None if window_start is None else rc.fnum(window_start)
        with self._writing() as batch:
            extra = self._rank_keys(ns, name)
            batch.log("rank", self._rk(ns, name), ("add", member, float(delta), start), extra)
            batch.names.setdefault(extra[1], set()).add(extra[0])
            batch.add_index(self._nss, ns)

    def _rank_keys(self, ns: str, name: bytes) -> tuple[str, str, str, str]:
        """What a ranking's script needs beside its zset: its name, the names index, the window indexes."""
        return name.decode(), self._n(ns, "rn"), self._n(ns, "rw:"), self._n(ns, "rws")

    def _ranking(self, rkey: str, ops: list[rc.Op]) -> dict[str, float]:
        scores = {m.decode(): -s for m, s in self._r.zrange(rkey, 0, -1, withscores=True)}
        rc.apply_rank_ops(scores, ops)
        return scores

    def rank_score(self, ns: str, ranking: Hashable, member: str) -> float | None:
        rkey = self._rk(ns, rc.enc(ranking))
        stored = self._r.zscore(rkey, member)
        score = None if stored is None else -float(stored)
        ops = self._ops(rkey)
        if ops:
            scores = {} if score is None else {member: score}
            rc.apply_rank_ops(scores, [op for op in ops if op[1] == member])
            score = scores.get(member)
        return score

    def rank_scores(self, ns: str, rankings: Sequence[Hashable], member: str) -> list[float | None]:
        if self._batch is not None:  # pending writes: merge them one ranking at a time
            return [self.rank_score(ns, ranking, member) for ranking in rankings]
        pipe = self._r.pipeline(transaction=False)
        for ranking in rankings:
            pipe.zscore(self._rk(ns, rc.enc(ranking)), member)
        stored = pipe.execute() if rankings else []
        return [None if score is None else -float(score) for score in stored]

    def rank_iter(self, ns: str, ranking: Hashable) -> Iterator[tuple[str, float]]:
        rkey = self._rk(ns, rc.enc(ranking))
        ops = self._ops(rkey)
        if ops:
            return iter(rc.rank_order(self._ranking(rkey, ops)))
        return self._pages(rkey)

    def _pages(self, rkey: str) -> Iterator[tuple[str, float]]:
        start, size = 0, 64
        while True:
            page = self._r.zrange(rkey, start, start + size - 1, withscores=True)
            for member, score in page:
                yield member.decode(), -score
            if len(page) < size:
                return
            start, size = start + size, min(size * 4, 4096)

    def rank_names(self, ns: str) -> Iterable[Hashable]:
        index = self._n(ns, "rn")
        names = {n.decode() for n in self._r.smembers(index)}
        batch = self._batch
        names.update(() if batch is None else batch.names.get(index, ()))
        return [rc.dec(n) for n in sorted(names)]

    def rank_size(self, ns: str, ranking: Hashable) -> int:
        rkey = self._rk(ns, rc.enc(ranking))
        ops = self._ops(rkey)
        return len(self._ranking(rkey, ops)) if ops else int(self._r.zcard(rkey))

    def rank_remove(self, ns: str, ranking: Hashable, member: str) -> None:
        name = rc.enc(ranking)
        with self._writing() as batch:
            batch.log("rank", self._rk(ns, name), ("remove", member), self._rank_keys(ns, name))

    # -- bounded lists ------------------------------------------------------------------------------
    def push_bounded(self, ns: str, key: str, sort_key: Any, value: Any, cap: int) -> None:
        op = (rc.sort_key_bytes(sort_key), pickle.dumps(value, pickle.HIGHEST_PROTOCOL), cap)
        with self._writing() as batch:
            batch.log("bounded", self._k(ns, key, "b"), op, (self._k(ns, key, "bv"), self._k(ns, key, "bq")))
            self._owned(batch, ns, key)

    def bounded(self, ns: str, key: str) -> Sequence[Any]:
        rkey, values, seq = (self._k(ns, key, kind) for kind in ("b", "bv", "bq"))
        with self._r.pipeline(transaction=False) as p:
            p.zrange(rkey, 0, -1)
            p.hgetall(values)
            p.get(seq)
            members, payloads, last = p.execute()
        ops = self._ops(rkey)
        if ops:
            rc.replay_bounded(members, payloads, int(last or 0), ops)
        return [pickle.loads(payloads[m[-rc.TAG_DIGITS :]]) for m in reversed(members)]

    # -- sets ---------------------------------------------------------------------------------------
    def set_add(self, ns: str, key: str, value: str) -> None:
        with self._writing() as batch:
            batch.log("set", self._k(ns, key, "t"), (value,))
            self._owned(batch, ns, key)

    def set_members(self, ns: str, key: str) -> frozenset[str] | set[str]:
        rkey = self._k(ns, key, "t")
        found = {v.decode() for v in self._r.smembers(rkey)}
        found.update(op[0] for op in self._ops(rkey) or ())
        return found

    # -- timelines ----------------------------------------------------------------------------------
    def timeline_add(self, ns: str, key: str, ts: float, value: str) -> None:
        with self._writing() as batch:
            batch.log("timeline", self._k(ns, key, "l"), ("a", float(ts), value), (self._k(ns, key, "lq"),))
            batch.add_index(self._nss, ns)

    def _timeline(self, rkey: str, low: float, high: float, stored: Any) -> list[tuple[float, int, str]]:
        entries = [(ts, int(m[: rc.TAG_DIGITS]), m[rc.TAG_DIGITS :].decode()) for m, ts in stored]
        ops = self._ops(rkey)
        return rc.replay_timeline(entries, ops, low, high) if ops else entries

    def timeline_range(self, ns: str, key: str, low: float, high: float) -> list[tuple[float, str]]:
        rkey = self._k(ns, key, "l")
        stored = self._r.zrange(rkey, rc.fnum(low), rc.fnum(high), byscore=True, withscores=True)
        return [(ts, value) for ts, _, value in self._timeline(rkey, low, high, stored)]

    def timeline_window(
        self, ns: str, key: str, low: float, high: float
    ) -> tuple[list[tuple[float, str]], float | None]:
        rkey = self._k(ns, key, "l")
        pipe = self._r.pipeline(transaction=False)
        pipe.zrange(rkey, rc.fnum(low), rc.fnum(high), byscore=True, withscores=True)
        pipe.zrange(rkey, -1, -1, withscores=True)
        in_range, newest = pipe.execute()
        entries = [(ts, value) for ts, _, value in self._timeline(rkey, low, high, in_range)]
        last = self._timeline(rkey, float("-inf"), float("inf"), newest)
        return entries, (last[-1][0] if last else None)

    def timeline_trim(self, ns: str, key: str, before: float) -> None:
        with self._writing() as batch:
            batch.log("timeline", self._k(ns, key, "l"), ("t", float(before)), (self._k(ns, key, "lq"),))

    def timeline_last(self, ns: str, key: str) -> float | None:
        rkey = self._k(ns, key, "l")
        stored = self._r.zrange(rkey, -1, -1, withscores=True)
        entries = self._timeline(rkey, float("-inf"), float("inf"), stored)
        return entries[-1][0] if entries else None

    # -- idempotency --------------------------------------------------------------------------------
    def seen(self, event_id: str) -> bool:
        batch = self._batch
        if batch is not None and event_id in batch.seen:
            return True
        return self._r.zscore(self._seen, event_id) is not None

    def seen_among(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        batch = self._batch
        pending = set(batch.seen) if batch is not None else set()
        scores = self._r.zmscore(self._seen, list(event_ids))
        return {e for e, score in zip(event_ids, scores, strict=True) if score is not None or e in pending}

    def mark_seen(self, event_id: str, ts: float) -> None:
        with self._writing() as batch:
            batch.seen[event_id] = ts

    def forget_seen_before(self, ts: float) -> None:
        with self._committed():
            self._r.zremrangebyscore(self._seen, "-inf", f"({ts!r}")

    def seen_count(self) -> int:
        stored = int(self._r.zcard(self._seen))
        batch = self._batch
        if batch is None or not batch.seen:
            return stored
        scores = self._r.zmscore(self._seen, list(batch.seen))
        return stored + sum(1 for s in scores if s is None)

    def forget_seen_beyond(self, keep: int) -> None:
        with self._committed():
            self._r.eval(rc.LUA_KEEP_NEWEST, 1, self._seen, keep)

    # -- documents and change logs --------------------------------------------------------------------
    def doc_put(self, ns: str, key: str, value: bytes | None) -> None:
        with self._writing() as batch:
            batch.log("docs", self._n(ns, "docs"), (key, value))
            batch.add_index(self._nss, ns)

    def _docs(self, rkey: str, found: dict[str, bytes]) -> dict[str, bytes]:
        for key, value in self._ops(rkey) or ():
            if value is None:
                found.pop(key, None)
            else:
                found[key] = value
        return found

    def doc_get(self, ns: str, key: str) -> bytes | None:
        rkey = self._n(ns, "docs")
        stored = self._r.hget(rkey, key.encode())
        return self._docs(rkey, {} if stored is None else {key: stored}).get(key)

    def docs(self, ns: str) -> dict[str, bytes]:
        rkey = self._n(ns, "docs")
        return self._docs(rkey, {k.decode(): v for k, v in self._r.hgetall(rkey).items()})

    def log_append(self, ns: str, value: bytes) -> None:
        """Append to a stream (never trimmed, as in memory); inside a batch the entry gets its position,
        and becomes readable, at ``commit``."""
        with self._writing() as batch:
            batch.logs.setdefault(self._n(ns, "log"), []).append(value)
            batch.add_index(self._nss, ns)

    def log_tail(self, ns: str) -> str:
        last = self._r.xrevrange(self._n(ns, "log"), "+", "-", count=1)
        return last[0][0].decode() if last else "0-0"

    def log_read(self, ns: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        rkey = self._n(ns, "log")
        with self._r.pipeline(transaction=False) as p:
            p.xrange(rkey, f"({after}", "+", count=limit)
            p.xrevrange(rkey, "+", "-", count=1)
            entries, last = p.execute()
        if not entries and rc.stream_id(after) > rc.stream_id(last[0][0].decode() if last else "0-0"):
            raise LogGap(f"log {ns!r} has no position {after} (it was reset)")
        return [(i.decode(), fields[b"v"]) for i, fields in entries]

    # -- whole state ---------------------------------------------------------------------------------
    def _scan(self) -> list[bytes]:
        """Every key of this store: ``prefix:{…}`` (not a longer prefix's ``prefix:x:{…}``) and two more."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._p) + ":{*"
        found = set(self._r.scan_iter(match=pattern, count=1000))
        with self._r.pipeline(transaction=False) as p:
            p.exists(self._seen)
            p.exists(self._nss)
            found.update(n.encode() for n, e in zip((self._seen, self._nss), p.execute(), strict=True) if e)
        return sorted(found)

    def dump(self) -> bytes:
        """Every key under the prefix (``DUMP`` payloads, names relative to the prefix).

        Not a point-in-time snapshot while other writers run; restorable on the same server version.
        """
        with self._committed():
            names = self._scan()
            with self._r.pipeline(transaction=False) as p:
                for name in names:
                    p.dump(name)
                payloads = p.execute()
        cut = len(self._p.encode())
        entries = [(n[cut:], d) for n, d in zip(names, payloads, strict=True) if d is not None]
        return pickle.dumps({"format": _DUMP_FORMAT, "keys": entries}, pickle.HIGHEST_PROTOCOL)

    def load(self, blob: bytes) -> None:
        """Replace everything under the prefix by a :meth:`dump`, in one transaction."""
        data = pickle.loads(blob)
        if not isinstance(data, dict) or data.get("format") != _DUMP_FORMAT:
            raise ValueError("not a RedisState dump (a state dump is specific to its back end)")
        with self._committed():
            stale = self._scan()
            with self._r.pipeline(transaction=True) as p:
                if stale:
                    p.unlink(*stale)
                for name, payload in data["keys"]:
                    p.restore(self._p.encode() + name, 0, payload, replace=True)
                p.execute()

    def stats(self) -> dict[str, int]:
        namespaces = sorted(n.decode() for n in self._r.smembers(self._nss))
        with self._r.pipeline(transaction=False) as p:
            for ns in namespaces:
                p.scard(self._n(ns, "keys"))
                p.zcard(self._n(ns, "wkeys"))
                p.zrange(self._n(ns, "ws"), 0, -1)
            p.zcard(self._seen)
            p.info("memory")
            sizes = p.execute()
        out = {"namespaces": len(namespaces), "remembered_event_ids": int(sizes[-2])}
        out["redis_used_memory_bytes"] = int(sizes[-1].get("used_memory", 0))
        with self._r.pipeline(transaction=False) as p:
            for i, ns in enumerate(namespaces):
                out[f"keys:{ns}"] = int(sizes[3 * i]) + int(sizes[3 * i + 1])
                for start in sizes[3 * i + 2]:
                    p.scard(self._n(ns, "wk:" + start.decode()))
            out["window_keys"] = sum(p.execute())
        out["users"] = out.get("keys:user_history", 0)
        return out
