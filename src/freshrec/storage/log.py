"""An append-only, segmented log of JSON records.

Each record is one line: ``<crc32 as 8 hex digits> <JSON>\\n``. A crash can leave a torn last line; on
open, the tail of the last segment that does not check out is cut off, so what remains is exactly the
records whose append returned.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson


class Position(NamedTuple):
    """Where a record ends: segment number and byte offset inside it."""

    segment: int
    offset: int


class CorruptLog(Exception):
    """A record in the middle of the log does not check out."""


class LogWriteFailed(Exception):
    """An append could not be made durable (a full disk, an I/O error): none of its records were kept."""


def _segment_name(number: int) -> str:
    return f"{number:08d}.log"


class EventLog:
    def __init__(self, directory: Path, segment_bytes: int = 64 * 1024 * 1024, fsync: bool = True) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        segments = self.segments()
        self._segment = segments[-1] if segments else 0
        path = directory / _segment_name(self._segment)
        self._truncate_torn_tail(path)
        self._file = path.open("ab", buffering=0)
        self._offset = self._file.tell()
        self._broken: str | None = None

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.log") if p.stem.isdigit())

    def position(self) -> Position:
        return Position(self._segment, self._offset)

    def append(self, records: Sequence[Mapping[str, Any]]) -> Position:
        """Write records; when ``fsync`` is on, they are on disk when this returns."""
        lines = []
        for record in records:
            body = orjson.dumps(record)
            lines.append(b"%08x " % zlib.crc32(body) + body + b"\n")
        data = b"".join(lines)
        if self._broken is not None:
            raise LogWriteFailed(self._broken)
        fd = self._file.fileno()
        try:
            view = memoryview(data)
            while view:  # the file is unbuffered: a failed write leaves nothing queued behind
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            self._cut_back()
            raise LogWriteFailed(f"the log could not be written: {exc}") from exc
        self._offset += len(data)
        if self._offset >= self.segment_bytes:
            self._rotate()
        return self.position()

    def read_from(self, start: Position) -> Iterator[tuple[dict[str, Any], Position]]:
        """Records after ``start``, each with the position where it ends."""
        for segment in self.segments():
            if segment < start.segment:
                continue
            offset = start.offset if segment == start.segment else 0
            with (self.directory / _segment_name(segment)).open("rb") as fh:
                fh.seek(offset)
                for line in fh:
                    record = _decode(line)
                    if record is None:
                        raise CorruptLog(f"segment {segment} has a damaged record at byte {offset}")
                    offset += len(line)
                    yield record, Position(segment, offset)

    def size_bytes(self) -> int:
        return sum((self.directory / _segment_name(s)).stat().st_size for s in self.segments())

    def close(self) -> None:
        self._file.close()

    def _cut_back(self) -> None:
        """Drop what a failed append may have written: the segment ends at the last whole append again."""
        try:
            os.ftruncate(self._file.fileno(), self._offset)
            os.fsync(self._file.fileno())
        except OSError as exc:  # appending after a torn line would damage the log: refuse until reopened
            self._broken = f"a failed append could not be cut back ({exc}); restart to recover"

    def _rotate(self) -> None:
        self._file.close()
        self._segment += 1
        self._file = (self.directory / _segment_name(self._segment)).open("ab", buffering=0)
        self._offset = 0
        _fsync_dir(self.directory)

    @staticmethod
    def _truncate_torn_tail(path: Path) -> None:
        """Cut a damaged tail (a crash mid-append); a damaged record followed by good ones is corruption."""
        if not path.exists():
            return
        good = 0
        damaged_at: int | None = None
        with path.open("rb") as fh:
            for line in fh:
                if _decode(line) is None:
                    if damaged_at is None:
                        damaged_at = good
                elif damaged_at is not None:
                    raise CorruptLog(
                        f"{path} has a damaged record at byte {damaged_at} followed by good ones; "
                        "refusing to cut acknowledged records (restore the file or move it aside)"
                    )
                if damaged_at is None:
                    good += len(line)
        if good != path.stat().st_size:
            with path.open("r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())


def read_range(directory: Path, start: Position, end: Position) -> Iterator[tuple[dict[str, Any], Position]]:
    """Records between ``start`` and ``end`` of the log in ``directory``, read by another process.

    ``end`` is a position the writer has published (a record boundary it wrote completely), so nothing past
    it is read: the writer may be appending there. Segments before ``end``'s are complete (it rotated).
    """
    segment, offset = start
    while (segment, offset) < tuple(end):
        path = directory / _segment_name(segment)
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(end.offset - offset) if segment == end.segment else fh.read()
        for body in data.split(b"\n")[:-1]:
            line = body + b"\n"
            record = _decode(line)
            if record is None:
                raise CorruptLog(f"segment {segment} has a damaged record at byte {offset}")
            offset += len(line)
            yield record, Position(segment, offset)
        if segment < end.segment:
            segment, offset = segment + 1, 0


def _decode(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or not line.endswith(b"\n") or line[8:9] != b" ":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        record = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
