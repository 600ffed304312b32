"""Decoding PostgreSQL's ``pgoutput`` logical-replication messages (protocol version 1).

The messages are those of the PostgreSQL manual's "Logical Replication Message Formats": a transaction is
``Begin``, its changes (``Insert``, ``Update``, ``Delete``, ``Truncate``, each naming a relation described
by an earlier ``Relation`` message), then ``Commit``. Column values arrive in PostgreSQL's text format (or
as null, or as "unchanged TOAST": a large value an update did not touch, which the message leaves out).

>>> lsn_text(parse_lsn("16/B374D848"))
'16/B374D848'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

#: seconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC)
PG_EPOCH = 946_684_800.0


class Unchanged:
    """A TOASTed value an update left as it was (the message does not carry it)."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
Value = bytes | None | Unchanged


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    key: bool  # part of the replica identity


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True, slots=True)
class Change:
    """One row change: ``new`` for inserts and updates, ``old`` the replica identity of updates/deletes."""

    kind: Literal["insert", "update", "delete", "truncate"]
    relation: Relation
    new: tuple[Value, ...] | None = None
    old: tuple[Value, ...] | None = None


@dataclass(slots=True)
class Transaction:
    """A committed transaction: its changes, where it ends in the WAL, and when it committed."""

    end_lsn: int = 0
    commit_time: float = 0.0
    changes: list[Change] = field(default_factory=list)


class DecodeError(ValueError):
    """A message that is not valid pgoutput (protocol version 1)."""


class Decoder:
    """Turns the messages of a slot, in order, into committed transactions.

    Relation descriptions are remembered across calls: PostgreSQL sends one before the first change of a
    relation in a session, and again when it changes.
    """

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self._open: Transaction | None = None

    def feed(self, message: bytes) -> Transaction | None:
        """Decode one message; returns the transaction its ``Commit`` completes, else None."""
        reader = _Reader(message)
        kind = reader.byte()
        if kind == b"B":
            reader.int64()  # final LSN, repeated in the Commit
            self._open = Transaction(commit_time=PG_EPOCH + reader.int64() / 1e6)
            return None
        if kind == b"C":
            done = self._transaction()
            reader.byte()  # flags
            reader.int64()  # commit LSN
            done.end_lsn = reader.int64()
            done.commit_time = PG_EPOCH + reader.int64() / 1e6
            self._open = None
            return done
        if kind == b"R":
            oid = reader.int32()
            namespace, name = reader.string(), reader.string()
            reader.byte()  # replica identity setting
            columns = []
            for _ in range(reader.int16()):
                flags = reader.int8()
                column_name = reader.string()
                type_oid = reader.int32()
                reader.int32()  # type modifier
                columns.append(Column(column_name, type_oid, bool(flags & 1)))
            self.relations[oid] = Relation(oid, namespace or "pg_catalog", name, tuple(columns))
        elif kind == b"I":
            relation = self._relation(reader.int32())
            reader.expect(b"N")
            self._transaction().changes.append(Change("insert", relation, new=reader.tuple()))
        elif kind == b"U":
            relation = self._relation(reader.int32())
            old = None
            marker = reader.byte()
            if marker in (b"K", b"O"):
                old = reader.tuple()
                marker = reader.byte()
            if marker != b"N":
                raise DecodeError(f"update message: expected 'N', got {marker!r}")
            self._transaction().changes.append(Change("update", relation, new=reader.tuple(), old=old))
        elif kind == b"D":
            relation = self._relation(reader.int32())
            if reader.byte() not in (b"K", b"O"):
                raise DecodeError("delete message without the old key")
            self._transaction().changes.append(Change("delete", relation, old=reader.tuple()))
        elif kind == b"T":
            count = reader.int32()
            reader.int8()  # options (CASCADE, RESTART IDENTITY)
            for _ in range(count):
                relation = self._relation(reader.int32())
                self._transaction().changes.append(Change("truncate", relation))
        # Origin ('O'), Type ('Y') and logical messages ('M') carry nothing a catalog needs
        return None

    def _transaction(self) -> Transaction:
        if self._open is None:
            raise DecodeError("a change outside a transaction (no Begin message before it)")
        return self._open

    def _relation(self, oid: int) -> Relation:
        relation = self.relations.get(oid)
        if relation is None:
            raise DecodeError(f"a change of relation {oid} before its Relation message")
        return relation


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.at = 0

    def _take(self, n: int) -> memoryview:
        if self.at + n > len(self.data):
            raise DecodeError(f"message ends after {len(self.data)} bytes; needed {self.at + n}")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def byte(self) -> bytes:
        return bytes(self._take(1))

    def expect(self, marker: bytes) -> None:
        got = self.byte()
        if got != marker:
            raise DecodeError(f"expected {marker!r}, got {got!r}")

    def int8(self) -> int:
        return int(struct.unpack("!b", self._take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack("!h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self._take(8))[0])

    def string(self) -> str:
        end = bytes(self.data[self.at :]).find(b"\0")
        if end < 0:
            raise DecodeError("unterminated string")
        text = bytes(self._take(end)).decode()
        self.at += 1
        return text

    def tuple(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind == b"n":
                values.append(None)
            elif kind == b"u":
                values.append(UNCHANGED)
            elif kind == b"t":
                values.append(bytes(self._take(self.int32())))
            else:
                raise DecodeError(f"column value of kind {kind!r} (binary values are not requested)")
        return tuple(values)


def parse_lsn(text: str) -> int:
    """An LSN written as PostgreSQL does (``16/B374D848``) as an integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
