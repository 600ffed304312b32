"""How :mod:`freshrec.state.redis` lays values out in Redis, and how a pending batch combines with them.

Three encodings, each deterministic so equal values always meet on the same Redis key or member:

* :func:`enc` / :func:`dec` — members, distinct values, ranking names: JSON (orjson) with tuples written as
  arrays and read back as tuples, so ``("category", 7200.0, "books")``, ``7200.0``, ``""`` and ``None``
  round-trip to equal values of the same types;
* :func:`sort_key_bytes` — bounded-list sort keys as bytes whose ``memcmp`` order is Python's order of the
  keys (numbers, ``str``, ``bytes``, ``None`` and tuples of them), so a sorted set of equal scores keeps
  the entries ordered by sort key server-side;
* :func:`esc` — entity names inside a ``{hash tag}``, with ``% { } |`` percent-escaped so a namespace and a
  key never run into each other and the tag always ends where it should.

Numbers are kept as ``%.17g`` text written by Lua in double precision (``repr`` from Python), which
round-trips exactly: ``HINCRBYFLOAT`` is not used because it adds in long double and prints 17 decimal
places, so ``0.1 + 0.2`` would read back as ``0.3`` and ``1e-20`` as ``0``, unlike the in-memory store.

A :class:`Batch` holds a batch's writes by Redis key, in call order. :func:`queue` turns it into commands,
one Lua call per key (the ``LUA_*`` scripts, each applying its key's writes in order); the ``apply_*`` /
``replay_*`` functions are the read-your-writes overlay: they apply the same pending writes, with the same
arithmetic, to values read from Redis before ``EXEC``.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from redis.client import Pipeline

Op = tuple[Any, ...]

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", "|": "%7C"})


def esc(name: str) -> str:
    """``name`` with the characters that delimit key parts percent-escaped."""
    return name.translate(_ESCAPES)


def fnum(value: float) -> str:
    """A float as exact text (``0`` and ``0.0`` give the same key)."""
    return repr(float(value))


def enc(value: Hashable) -> bytes:
    """A member, value or ranking name as compact JSON (tuples as arrays)."""
    return orjson.dumps(value)


def dec(raw: bytes | str) -> Hashable:
    """The inverse of :func:`enc`: arrays come back as tuples."""
    value: Hashable = _tuples(orjson.loads(raw))
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def sort_key_bytes(key: Any) -> bytes:
    """Bytes that compare (``memcmp``) like ``key`` compares in Python; prefix-free."""
    out = bytearray()
    _put_sort_key(out, key)
    return bytes(out)


def _put_sort_key(out: bytearray, key: Any) -> None:
    if key is None:
        out.append(0x01)
    elif isinstance(key, int | float):
        number = float(key)
        if number != key or math.isnan(number):
            raise ValueError(f"sort key {key!r} has no exact double value")
        (bits,) = struct.unpack(">Q", struct.pack(">d", number + 0.0))
        bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
        out.append(0x02)
        out += bits.to_bytes(8, "big")
    elif isinstance(key, str | bytes):
        out.append(0x03 if isinstance(key, str) else 0x04)
        out += (key.encode() if isinstance(key, str) else key).replace(b"\x00", b"\x00\xff")
        out += b"\x00\x01"
    elif isinstance(key, tuple | list):
        out.append(0x05)
        for part in key:
            _put_sort_key(out, part)
        out.append(0x00)
    else:
        raise TypeError(f"unsupported sort key type {type(key).__name__}")


# -- counters: one hash per entity (or per entity and window), fields ``enc(member) NUL field`` -----------
# A field named ``enc(member)`` alone marks a member added with no fields (``add`` with empty deltas).


def counter_field(member: bytes, name: str) -> bytes:
    return member + b"\x00" + name.encode()


def hash_values(raw: dict[bytes, bytes]) -> dict[bytes, float | None]:
    """A counter hash as read: numbers by field, ``None`` for member markers."""
    return {f: (float(v) if b"\x00" in f else None) for f, v in raw.items()}


def apply_hash_ops(values: dict[bytes, float | None], ops: Iterable[Op]) -> None:
    """Pending ``("+", field, delta)``, ``("^", field, value)`` (max) and ``("m", member)``, in order."""
    for op in ops:
        kind, field = op[0], op[1]
        current = values.get(field)
        if kind == "+":
            values[field] = op[2] if current is None else current + op[2]
        elif kind == "^":
            if current is None or op[2] > current:
                values[field] = op[2]
        else:
            values.setdefault(field, None)


def decode_counters(
    values: dict[bytes, float | None], member: bytes | None = None
) -> dict[Hashable, dict[str, float]]:
    """Fields by member (only ``member``'s when given)."""
    out: dict[Hashable, dict[str, float]] = {}
    decoded: dict[bytes, Hashable] = {}
    for field, value in values.items():
        raw_member, _, name = field.partition(b"\x00")
        if member is not None and raw_member != member:
            continue
        who = decoded.get(raw_member)
        if who is None and raw_member not in decoded:
            who = decoded[raw_member] = dec(raw_member)
        fields = out.setdefault(who, {})
        if value is not None:
            fields[name.decode()] = value
    return out


# -- decayed sums: per field ``"value reference_time"`` --------------------------------------------------


def apply_decay_ops(entry: tuple[float, float] | None, ops: Iterable[Op]) -> tuple[float, float] | None:
    """Pending ``(field, value, ts, half_life)``: the reference-time update of the memory store."""
    for _, value, ts, half_life in ops:
        if entry is None:
            entry = (value, ts)
        elif ts >= entry[1]:
            entry = (entry[0] * math.pow(2.0, -(ts - entry[1]) / half_life) + value, ts)
        else:
            entry = (entry[0] + value * math.pow(2.0, -(entry[1] - ts) / half_life), entry[1])
    return entry


def parse_decayed(raw: bytes | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    value, ts = raw.split(b" ")
    return float(value), float(ts)


# -- rankings: negated scores, so ``ZRANGE`` ascending is score desc, member asc -------------------------


def apply_rank_ops(scores: dict[str, float], ops: Iterable[Op]) -> None:
    """Pending ``("add", member, delta, window)`` and ``("remove", member)``, in order."""
    for op in ops:
        if op[0] == "add":
            scores[op[1]] = scores.get(op[1], 0.0) + op[2]
        else:
            scores.pop(op[1], None)


def rank_order(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


# -- bounded lists: members ``sort_key_bytes + tag`` at score 0, payloads in a hash by tag --------------
# ``tag`` is 15 digits of ``999999999999999 - seq``: among equal sort keys the newest sorts lowest, so
# ``ZPOPMIN`` evicts the smallest key and, among tied smallest keys, the latest in.

TAG_DIGITS = 15


def bounded_tag(seq: int) -> bytes:
    return b"%015d" % (10**TAG_DIGITS - 1 - seq)


def replay_bounded(members: list[bytes], payloads: dict[bytes, bytes], seq: int, ops: Iterable[Op]) -> None:
    """Pending ``(sort_key_bytes, payload, cap)`` on ascending ``members`` (the Lua script's rule)."""
    for sort_key, payload, cap in ops:
        seq += 1
        tag = bounded_tag(seq)
        bisect.insort(members, sort_key + tag)
        payloads[tag] = payload
        if len(members) > cap and len(members) > 1:
            payloads.pop(members.pop(0)[-TAG_DIGITS:], None)


# -- timelines: score = time, member = 15-digit sequence number + value ----------------------------------


def replay_timeline(
    entries: list[tuple[float, int, str]], ops: Iterable[Op], low: float, high: float
) -> list[tuple[float, int, str]]:
    """Pending ``("a", ts, value)`` and ``("t", before)`` on ``entries`` restricted to [low, high]."""
    seq = 10**TAG_DIGITS
    for op in ops:
        if op[0] == "a":
            seq += 1
            if low <= op[1] <= high:
                bisect.insort(entries, (op[1], seq, op[2]))
        else:
            entries = [e for e in entries if e[0] >= op[1]]
    return entries


# -- Lua: one call per key and batch applies that key's pending operations in call order, server-side, so
# a batch is a handful of commands inside MULTI/EXEC and every read-modify-write is atomic.

LUA_HASH = """
local h = KEYS[1]
for i = 1, #ARGV, 3 do
  local op, f = ARGV[i], ARGV[i + 1]
  if op == 'm' then
    redis.call('HSETNX', h, f, '')
  else
    local v = tonumber(ARGV[i + 2])
    local cur = redis.call('HGET', h, f)
    if op == '+' then
      if cur then v = tonumber(cur) + v end
      redis.call('HSET', h, f, string.format('%.17g', v))
    elseif not cur or v > tonumber(cur) then
      redis.call('HSET', h, f, ARGV[i + 2])
    end
  end
end
return 0
"""

LUA_DECAY = """
for i = 1, #ARGV, 4 do
  local f, v, ts, hl = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local cur = redis.call('HGET', KEYS[1], f)
  if cur then
    local sep = string.find(cur, ' ', 1, true)
    local s, ref = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
    if ts >= ref then
      v = s * math.pow(2, -(ts - ref) / hl) + v
    else
      v = s + v * math.pow(2, -(ref - ts) / hl)
      ts = ref
    end
  end
  redis.call('HSET', KEYS[1], f, string.format('%.17g %.17g', v, ts))
end
return 0
"""

LUA_DISTINCT = """
local added = 0
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], '') == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1)
    added = added + 1
  end
end
return added
"""

LUA_RANK = """
local created = false
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('ZREM', KEYS[1], ARGV[i])
  else
    if not created then
      created = true
      if redis.call('SADD', KEYS[2], ARGV[1]) == 1 and KEYS[3] then
        redis.call('SADD', KEYS[3], ARGV[1])
        redis.call('ZADD', KEYS[4], ARGV[2], ARGV[2])
      end
    end
    redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i])
  end
end
return 0
"""

LUA_BOUNDED = """
for i = 1, #ARGV, 3 do
  local seq = redis.call('INCR', KEYS[3])
  local tag = string.format('%015d', 999999999999999 - seq)
  redis.call('ZADD', KEYS[1], 0, ARGV[i] .. tag)
  redis.call('HSET', KEYS[2], tag, ARGV[i + 1])
  local n = redis.call('ZCARD', KEYS[1])
  if n > tonumber(ARGV[i + 2]) and n > 1 then
    local popped = redis.call('ZPOPMIN', KEYS[1])
    redis.call('HDEL', KEYS[2], string.sub(popped[1], -15))
  end
end
return 0
"""

LUA_TIMELINE = """
for i = 1, #ARGV, 3 do
  if ARGV[i] == 'a' then
    local seq = redis.call('INCR', KEYS[2])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], string.format('%015d', seq) .. ARGV[i + 2])
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[i + 1])
  end
end
return 0
"""

LUA_KEEP_NEWEST = """
local n = redis.call('ZCARD', KEYS[1])
local keep = tonumber(ARGV[1])
if n > keep then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1) end
return 0
"""

SCRIPTS = (LUA_HASH, LUA_DECAY, LUA_DISTINCT, LUA_RANK, LUA_BOUNDED, LUA_TIMELINE)
SHA1 = {s: hashlib.sha1(s.encode(), usedforsecurity=False).hexdigest() for s in SCRIPTS}

SCRIPT_ARGS: dict[str, tuple[str, Callable[[Op], tuple[bytes | str | int, ...]]]] = {
    "hash": (LUA_HASH, lambda op: (op[0], op[1], fnum(op[2]) if len(op) > 2 else "")),
    "decay": (LUA_DECAY, lambda op: (op[0], fnum(op[1]), fnum(op[2]), fnum(op[3]))),
    "distinct": (LUA_DISTINCT, lambda op: op),
    "bounded": (LUA_BOUNDED, lambda op: op),
    "timeline": (LUA_TIMELINE, lambda op: (op[0], fnum(op[1]), op[2] if len(op) > 2 else "")),
}


# -- the write buffer of a batch -------------------------------------------------------------------------


class Batch:
    """Pending writes by Redis key, in call order: what reads combine with, and what ``commit`` sends."""

    __slots__ = ("index", "kinds", "logs", "names", "ops", "seen", "ttls")

    def __init__(self) -> None:
        self.ops: dict[str, list[Op]] = {}
        self.kinds: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.index: dict[str, dict[str, float | None]] = {}
        self.names: dict[str, set[str]] = {}
        self.seen: dict[str, float] = {}
        self.logs: dict[str, list[bytes]] = {}
        self.ttls: dict[str, int] = {}  # key -> its expiry in ms, set after the writes

    def log(self, kind: str, rkey: str, op: Op, extra: tuple[str, ...] = ()) -> None:
        ops = self.ops.get(rkey)
        if ops is None:
            self.ops[rkey] = [op]
            self.kinds[rkey] = (kind, extra)
        else:
            ops.append(op)

    def add_index(self, index: str, member: str, score: float | None = None) -> None:
        """A member of a set index, or of a sorted one (ZADD GT: the largest score stays)."""
        pending = self.index.setdefault(index, {})
        known = pending.get(member)
        if member not in pending or (score is not None and (known is None or score > known)):
            pending[member] = score


def queue(pipe: Pipeline, batch: Batch, seen_key: str) -> None:
    """A batch as commands: one script call (or command) per key, then indexes, event ids, log entries."""
    cached: set[str] = set()

    def run(script: str, keys: Sequence[str], args: Iterable[bytes | str | int]) -> None:
        if script in cached:  # the EVAL earlier in this transaction cached it
            pipe.evalsha(SHA1[script], len(keys), *keys, *args)
        else:
            cached.add(script)
            pipe.eval(script, len(keys), *keys, *args)

    for rkey, (kind, extra) in batch.kinds.items():
        ops = batch.ops[rkey]
        if kind == "set":
            pipe.sadd(rkey, *{op[0] for op in ops})
        elif kind == "docs":
            final: dict[str, bytes | None] = dict(ops)
            if any(v is not None for v in final.values()):
                pipe.hset(rkey, mapping={k: v for k, v in final.items() if v is not None})
            if None in final.values():
                pipe.hdel(rkey, *(k for k, v in final.items() if v is None))
        elif kind == "rank":
            start = next((op[3] for op in ops if op[0] == "add"), None)
            keys = [rkey, extra[1]] if start is None else [rkey, extra[1], extra[2] + start, extra[3]]
            moves = [x for op in ops for x in (op[1], fnum(-op[2]) if op[0] == "add" else "")]
            run(LUA_RANK, keys, [extra[0], start or "", *moves])
        else:
            script, args = SCRIPT_ARGS[kind]
            run(script, [rkey, *extra], [x for op in ops for x in args(op)])
    for index, members in batch.index.items():
        if next(iter(members.values())) is None:
            pipe.sadd(index, *members)
        else:
            pipe.zadd(index, {m: s for m, s in members.items() if s is not None}, gt=True)
    if batch.seen:
        pipe.zadd(seen_key, batch.seen)
    for stream, values in batch.logs.items():
        for value in values:
            pipe.xadd(stream, {"v": value})
    for rkey, ms in batch.ttls.items():
        pipe.pexpire(rkey, ms)


class Client(Protocol):
    """The replies this module relies on, from a client with ``decode_responses=False``."""

    def hget(self, name: str, key: bytes) -> bytes | None: ...
    def hgetall(self, name: str) -> dict[bytes, bytes]: ...
    def hexists(self, name: str, key: bytes) -> bool: ...
    def smembers(self, name: str) -> set[bytes]: ...
    def zrange(
        self, name: str, start: int | str, end: int | str, *, byscore: bool = ..., withscores: bool = ...
    ) -> list[Any]: ...
    def zscore(self, name: str, member: str) -> float | None: ...
    def zmscore(self, key: str, members: list[str]) -> list[float | None]: ...
    def zcard(self, name: str) -> int: ...
    def xrevrange(self, name: str, max: str, min: str, count: int) -> list[Any]: ...
    def zremrangebyscore(self, name: str, low: str, high: str) -> int: ...
    def eval(self, script: str, numkeys: int, *args: Any) -> Any: ...
    def scan_iter(self, *, match: str, count: int) -> Iterator[bytes]: ...
    def pipeline(self, transaction: bool = ...) -> Pipeline: ...


def stream_id(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)
