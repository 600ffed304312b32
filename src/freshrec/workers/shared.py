"""The few numbers the serving processes of one data directory share: a page of anonymous shared memory.

The writer publishes the journal position it has applied (segment, offset), a generation that moves
whenever it swapped a model (CF, ranker) in, and how many re-sent events it found already applied (only the
writer sees writes, so readers report its count); a reader compares them with its own before answering. The
supervisor lists the readers' process ids there, so the writer can stop them by PID on shutdown.

The page is mapped before the first ``fork`` (``MAP_SHARED | MAP_ANONYMOUS``): every process forked from
the writer, directly or through the supervisor, sees the same page, and nothing else can.

Consistent reads without a lock: a sequence counter is made odd before the fields change and even after
(a seqlock); a reader retries while it is odd or changed under it. There is one writer of each field
(the writer process for the position, the supervisor for the PIDs), so writers need no lock among
themselves.
"""

from __future__ import annotations

import mmap
import struct

from freshrec.storage.log import Position

_HEAD = struct.Struct("<QQQQQ")  # sequence, segment, offset, generation, duplicate events
#: readers listed at most (more are served, but not listed for the shutdown sweep)
MAX_READERS = 64
_PIDS = struct.Struct(f"<{MAX_READERS}q")
_PIDS_AT = 64


class SharedState:
    """The shared page; create it in the writer before forking."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)

    # -- the writer -----------------------------------------------------------------------------------
    def publish(
        self, position: Position, generation: int | None = None, duplicates: int | None = None
    ) -> None:
        """Make ``position`` (and ``generation``, the duplicate count) what readers catch up to."""
        seq, _, _, current, known = _HEAD.unpack_from(self._map, 0)
        gen = current if generation is None else generation
        dup = known if duplicates is None else duplicates
        _HEAD.pack_into(self._map, 0, seq + 1, position.segment, position.offset, gen, dup)  # odd: changing
        _HEAD.pack_into(self._map, 0, seq + 2, position.segment, position.offset, gen, dup)

    def bump_generation(self, position: Position) -> int:
        """A model was swapped in: readers reload the model files."""
        generation = self.read()[1] + 1
        self.publish(position, generation)
        return generation

    # -- readers --------------------------------------------------------------------------------------
    def read(self) -> tuple[Position, int]:
        """The published position and generation, consistent with each other."""
        position, generation, _ = self.read_all()
        return position, generation

    def read_all(self) -> tuple[Position, int, int]:
        """The published position, generation and duplicate count, consistent with each other."""
        while True:
            seq, segment, offset, generation, duplicates = _HEAD.unpack_from(self._map, 0)
            if seq % 2 == 0 and _HEAD.unpack_from(self._map, 0)[0] == seq:
                return Position(segment, offset), generation, duplicates

    # -- the supervisor -------------------------------------------------------------------------------
    def set_readers(self, pids: list[int]) -> None:
        listed = pids[:MAX_READERS]
        _PIDS.pack_into(self._map, _PIDS_AT, *listed, *([0] * (MAX_READERS - len(listed))))

    def readers(self) -> list[int]:
        return [pid for pid in _PIDS.unpack_from(self._map, _PIDS_AT) if pid > 0]
