"""The durable log (:mod:`freshrec.storage.log`) and the data directory around it (SPEC §7)."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from freshrec.config import Settings, load_settings
from freshrec.engine import Engine
from freshrec.storage import snapshot as on_disk
from freshrec.storage.datadir import KEEP_SNAPSHOTS, DataDir, DataDirLocked
from freshrec.storage.log import CorruptLog, EventLog, LogWriteFailed, Position


@pytest.fixture(autouse=True)
def _no_freshrec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FRESHREC_"):
            monkeypatch.delenv(name)


def rec(i: int) -> dict[str, Any]:
    return {"op": "test", "n": i, "pad": "x" * 20}


START_OF_LOG = Position(0, 0)


def all_records(log: EventLog, start: Position = START_OF_LOG) -> list[dict[str, Any]]:
    return [record for record, _ in log.read_from(start)]


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}.log"


def line(record: dict[str, Any]) -> bytes:
    body = orjson.dumps(record)
    return b"%08x " % zlib.crc32(body) + body + b"\n"


# ---------------------------------------------------------------------------------------------------------
# EventLog


def test_append_and_read_from_positions(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log", fsync=False)
    assert log.position() == Position(0, 0)
    assert all_records(log) == []
    first = log.append([rec(0), rec(1)])
    second = log.append([rec(2)])
    assert first == Position(0, len(line(rec(0))) + len(line(rec(1))))
    assert second == Position(0, first.offset + len(line(rec(2))))
    assert log.position() == second

    read = list(log.read_from(Position(0, 0)))
    assert [r for r, _ in read] == [rec(0), rec(1), rec(2)]
    assert [p for _, p in read] == [Position(0, len(line(rec(0)))), first, second]
    # from a position: the records after it
    assert all_records(log, first) == [rec(2)]
    assert all_records(log, read[0][1]) == [rec(1), rec(2)]
    assert all_records(log, second) == []
    assert log.size_bytes() == second.offset
    log.close()


def test_append_of_nothing_changes_nothing(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log", fsync=False)
    log.append([rec(0)])
    before = log.position()
    assert log.append([]) == before
    assert all_records(log) == [rec(0)]
    log.close()


def test_segments_rotate_and_read_in_order(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    size = len(line(rec(0)))
    log = EventLog(directory, segment_bytes=3 * size, fsync=True)
    positions = [log.append([rec(i)]) for i in range(10)]
    assert len(log.segments()) >= 3
    # each closed segment holds at least segment_bytes and began a fresh file afterwards
    for number in log.segments()[:-1]:
        assert segment_path(directory, number).stat().st_size >= 3 * size
    read = list(log.read_from(Position(0, 0)))
    assert [r for r, _ in read] == [rec(i) for i in range(10)]
    assert [p.segment for _, p in read] == sorted(p.segment for _, p in read)
    # any position handed out by append resumes right after that record
    for i, position in enumerate(positions):
        assert all_records(log, position) == [rec(j) for j in range(i + 1, 10)]
    # and so does any position read_from yields
    for i, (_, position) in enumerate(read):
        assert all_records(log, position) == [rec(j) for j in range(i + 1, 10)]
    log.close()


def test_reopening_appends_after_existing_data(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    size = len(line(rec(0)))
    log = EventLog(directory, segment_bytes=4 * size, fsync=False)
    for i in range(6):
        log.append([rec(i)])
    end = log.position()
    log.close()

    again = EventLog(directory, segment_bytes=4 * size, fsync=False)
    assert again.position() == end
    again.append([rec(6), rec(7)])
    assert all_records(again) == [rec(i) for i in range(8)]
    again.close()
    third = EventLog(directory, segment_bytes=4 * size, fsync=False)
    assert all_records(third) == [rec(i) for i in range(8)]
    third.close()


def test_torn_partial_last_line_is_truncated_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    log = EventLog(directory, fsync=False)
    end = log.append([rec(0), rec(1)])
    log.close()
    with segment_path(directory, 0).open("ab") as fh:
        fh.write(line(rec(2))[:-7])  # the crash cut the last write short

    reopened = EventLog(directory, fsync=False)
    assert segment_path(directory, 0).stat().st_size == end.offset
    assert reopened.position() == end
    assert all_records(reopened) == [rec(0), rec(1)]
    reopened.append([rec(3)])
    assert all_records(reopened) == [rec(0), rec(1), rec(3)]
    reopened.close()


def test_torn_line_without_newline_is_truncated(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    log = EventLog(directory, fsync=False)
    end = log.append([rec(0)])
    log.close()
    with segment_path(directory, 0).open("ab") as fh:
        fh.write(line(rec(1))[:-1])  # everything but the newline
    reopened = EventLog(directory, fsync=False)
    assert reopened.position() == end
    assert all_records(reopened) == [rec(0)]
    reopened.close()


def test_bad_crc_on_last_line_is_truncated_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    log = EventLog(directory, fsync=False)
    log.append([rec(0), rec(1)])
    middle = log.position()
    log.append([rec(2)])
    log.close()
    path = segment_path(directory, 0)
    data = bytearray(path.read_bytes())
    # flip one byte of the last record's body: its CRC no longer checks out
    data[middle.offset + 20] ^= 0x01
    path.write_bytes(bytes(data))

    reopened = EventLog(directory, fsync=False)
    assert reopened.position() == middle
    assert all_records(reopened) == [rec(0), rec(1)]
    reopened.close()


def test_damaged_record_in_an_earlier_segment_raises_corrupt_log(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    size = len(line(rec(0)))
    log = EventLog(directory, segment_bytes=3 * size, fsync=False)
    for i in range(9):
        log.append([rec(i)])
    log.close()
    path = segment_path(directory, 0)
    data = bytearray(path.read_bytes())
    data[size + 15] ^= 0x01  # the second record of the first segment
    path.write_bytes(bytes(data))

    reopened = EventLog(directory, segment_bytes=3 * size, fsync=False)
    with pytest.raises(CorruptLog, match=f"segment 0 .* byte {size}"):
        all_records(reopened)
    reopened.close()


def test_damaged_record_in_the_middle_of_the_last_segment_is_not_silently_dropped(tmp_path: Path) -> None:
    """A damaged record followed by good, acknowledged records is corruption, not a torn tail.

    Cutting the segment at the damaged record would lose every acknowledged record after it (SPEC §7:
    no acknowledged event lost), so opening or reading the log must raise :class:`CorruptLog` and leave
    the records on disk.
    """
    directory = tmp_path / "log"
    log = EventLog(directory, fsync=False)
    log.append([rec(i) for i in range(5)])
    log.close()
    path = segment_path(directory, 0)
    original_size = path.stat().st_size
    size = len(line(rec(0)))
    data = bytearray(path.read_bytes())
    data[size + 15] ^= 0x01  # the second of five records
    path.write_bytes(bytes(data))

    with pytest.raises(CorruptLog):
        reopened = EventLog(directory, fsync=False)
        try:
            all_records(reopened)
        finally:
            reopened.close()
    assert path.stat().st_size == original_size


# ---------------------------------------------------------------------------------------------------------
# DataDir


def settings(**storage: Any) -> Settings:
    return load_settings(clock="event", storage={"fsync": False, **storage})


def test_a_locked_data_dir_cannot_be_opened_twice(tmp_path: Path) -> None:
    path = tmp_path / "data"
    first = DataDir(path, settings())
    with pytest.raises(DataDirLocked) as caught:
        DataDir(path, settings())
    message = str(caught.value)
    assert str(path) in message
    assert "in use" in message
    assert "--data-dir" in message
    first.close()
    # released on close
    second = DataDir(path, settings())
    second.close()


CATEGORIES = ["books", "music", "games", "garden"]
BRANDS = ["acme", "globex", "initech"]
TYPES = ["view", "view", "view", "click", "click", "add_to_cart", "save", "share", "wishlist", "purchase"]
START = 1_700_000_000.0


def make_items(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    return [
        {
            "item_id": f"item-{i}",
            "title": f"Item {i}",
            "category": rng.choice(CATEGORIES),
            "brand": rng.choice(BRANDS),
            "price": rng.choice([5.0, 25.0, 60.0, 100.0, 250.0, 800.0]),
        }
        for i in range(n)
    ]


def make_events(n: int, seed: int, offset: int = 0) -> list[dict[str, Any]]:
    """Events over three weeks, mostly in time order with late ones, some with their own attributes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = START + (offset + i) * 1_800.0 / 4 - rng.choice([0.0, 0.0, 0.0, 7_200.0, 86_400.0])
        event: dict[str, Any] = {
            "event_id": f"e-{seed}-{i}",
            "user_id": f"user-{rng.randrange(12)}",
            "item_id": f"item-{rng.randrange(40)}",
            "type": rng.choice(TYPES),
            "timestamp": ts,
        }
        if rng.random() < 0.2:
            event["dwell_seconds"] = float(rng.randrange(1, 90))
        if rng.random() < 0.1:
            event["category"] = rng.choice(CATEGORIES)
            event["price"] = rng.choice([10.0, 99.0, 600.0])
        out.append(event)
    return out


def chunks(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def all_rows(engine: Engine) -> dict[str, list[str]]:
    return {
        name: sorted(
            orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode() for row in engine.view_rows(name)
        )
        for name in engine.views
    }


def test_snapshot_plus_log_tail_recovers_the_full_state(tmp_path: Path) -> None:
    items = make_items(40)
    before_snapshot = make_events(1_200, seed=1)
    after_snapshot = make_events(800, seed=2, offset=1_200)

    reference = Engine(settings())
    reference.upsert_items(items[:30])
    for batch in chunks(before_snapshot, 100):
        reference.ingest(batch)
    reference.upsert_items(items[30:])
    for batch in chunks(after_snapshot, 100):
        reference.ingest(batch)

    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    engine.upsert_items(items[:30])
    for batch in chunks(before_snapshot, 100):
        engine.ingest(batch)
    snapshot = datadir.snapshot()
    engine.upsert_items(items[30:])
    for batch in chunks(after_snapshot, 100):
        engine.ingest(batch)
    engine.ingest(before_snapshot[:50])  # re-sends change nothing
    datadir.close(snapshot=False)  # as after a crash: the tail is only in the log
    assert snapshot.exists()
    tail_log = EventLog(path / "log", fsync=False)
    assert all_records(tail_log), "the log holds the records after the snapshot"
    tail_log.close()

    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed and replayed[-1] == 800 + 10  # the tail: 800 events and 10 items
    assert recovered.applied_events == reference.applied_events == 2_000
    assert recovered.event_clock == reference.event_clock
    assert len(recovered.catalog) == len(reference.catalog)
    assert all_rows(recovered) == all_rows(reference)
    for row in all_rows(reference).values():
        assert row, "every view has rows in this data set"
    assert recovered.profile("user-3") == reference.profile("user-3")
    # events written after recovery are journaled too
    recovered.ingest(make_events(5, seed=3, offset=2_000))
    reopened.close(snapshot=False)
    last = DataDir(path, settings())
    assert last.open_engine().applied_events == 2_005
    last.close(snapshot=False)


def test_log_alone_recovers_the_full_state(tmp_path: Path) -> None:
    items = make_items(40)
    events = make_events(600, seed=4)
    reference = Engine(settings())
    reference.upsert_items(items)
    for batch in chunks(events, 64):
        reference.ingest(batch)

    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    engine.upsert_items(items)
    for batch in chunks(events, 64):
        engine.ingest(batch)
    datadir.close(snapshot=False)
    assert list((path / "snapshots").iterdir()) == []

    reopened = DataDir(path, settings())
    recovered = reopened.open_engine()
    assert recovered.applied_events == 600
    assert all_rows(recovered) == all_rows(reference)
    reopened.close(snapshot=False)


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    written = []
    for round_ in range(5):
        engine.ingest(make_events(20, seed=10 + round_, offset=20 * round_))
        written.append(datadir.snapshot())
    kept = sorted(p.name for p in (path / "snapshots").iterdir())
    assert KEEP_SNAPSHOTS == 2
    assert kept == sorted(p.name for p in written[-2:])
    datadir.close(snapshot=False)
    reopened = DataDir(path, settings())
    assert reopened.open_engine().applied_events == 100
    reopened.close(snapshot=False)


def test_maybe_snapshot_follows_the_configured_cadence(tmp_path: Path) -> None:
    path = tmp_path / "data"
    datadir = DataDir(path, settings(snapshot_every_events=50))
    engine = datadir.open_engine()
    engine.ingest(make_events(30, seed=20))
    assert not datadir.maybe_snapshot()
    engine.ingest(make_events(30, seed=21, offset=30))
    assert datadir.maybe_snapshot()
    datadir.wait_snapshot()  # written by a forked process
    assert len(list((path / "snapshots").iterdir())) == 1
    assert not datadir.maybe_snapshot()
    datadir.close(snapshot=False)


def test_a_snapshot_of_an_older_state_layout_is_replaced_by_the_whole_log(tmp_path: Path) -> None:
    """A snapshot written by an earlier version is not loaded: the log (never trimmed) rebuilds the state."""
    items = make_items(40)
    events = make_events(500, seed=6)
    reference = Engine(settings())
    reference.upsert_items(items)
    for batch in chunks(events, 100):
        reference.ingest(batch)

    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    engine.upsert_items(items)
    for batch in chunks(events[:300], 100):
        engine.ingest(batch)
    snapshot = datadir.snapshot()
    for batch in chunks(events[300:], 100):
        engine.ingest(batch)
    datadir.close(snapshot=False)
    state = on_disk.read(snapshot)
    state["version"] = 4  # as written before the snapshot became a directory of arrays
    shutil.rmtree(snapshot)
    on_disk.write(state, snapshot)

    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed[-1] == 500 + 40  # every record, not only the tail after the snapshot
    assert recovered.applied_events == 500
    assert all_rows(recovered) == all_rows(reference)
    reopened.close(snapshot=False)


def _reference(items: list[dict[str, Any]], events: list[dict[str, Any]]) -> Engine:
    reference = Engine(settings())
    reference.upsert_items(items)
    for batch in chunks(events, 100):
        reference.ingest(batch)
    return reference


def test_a_background_snapshot_holds_the_state_at_the_fork(tmp_path: Path) -> None:
    """Events applied while the forked writer runs are not in its snapshot, only in the log after it."""
    items, events = make_items(40), make_events(900, seed=7)
    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    engine.upsert_items(items)
    for batch in chunks(events[:500], 100):
        engine.ingest(batch)
    at_fork = all_rows(engine)
    written = datadir.snapshot(background=True)
    for batch in chunks(events[500:], 100):  # applied while the child writes
        engine.ingest(batch)
    datadir.wait_snapshot()
    assert written.is_dir() and datadir.last_pause_s is not None
    alone = Engine(settings())
    alone.restore(on_disk.read(written))
    assert all_rows(alone) == at_fork
    assert alone.applied_events == 500
    datadir.close(snapshot=False)

    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed[-1] == 400  # the tail after the fork
    assert all_rows(recovered) == all_rows(_reference(items, events))
    reopened.close(snapshot=False)


def test_maybe_snapshot_forks_and_a_restart_uses_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "data"
    datadir = DataDir(path, settings(snapshot_every_events=100))
    engine = datadir.open_engine()
    events = make_events(250, seed=8)
    for batch in chunks(events, 50):
        engine.ingest(batch)
        if datadir.maybe_snapshot():
            datadir.wait_snapshot()  # else the next one may find it still being written, and skip
    datadir.close(snapshot=False)
    kept = sorted(p.name for p in (path / "snapshots").iterdir())
    assert len(kept) == KEEP_SNAPSHOTS and not any(k.endswith(".tmp") for k in kept)
    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed[-1] == 50  # 200 events are in the newest snapshot
    assert all_rows(recovered) == all_rows(_reference([], events))
    reopened.close(snapshot=False)


@pytest.mark.parametrize("damage", ["state", "array", "missing-array"])
def test_a_damaged_newest_snapshot_falls_back_to_the_one_before(tmp_path: Path, damage: str) -> None:
    items, events = make_items(40), make_events(600, seed=9)
    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    engine.upsert_items(items)
    for batch in chunks(events[:300], 100):
        engine.ingest(batch)
    datadir.snapshot()
    for batch in chunks(events[300:500], 100):
        engine.ingest(batch)
    newest = datadir.snapshot()
    for batch in chunks(events[500:], 100):
        engine.ingest(batch)
    datadir.close(snapshot=False)
    arrays = sorted((newest / "arrays").iterdir())
    if damage == "state":
        (newest / "state.pickle").write_bytes(b"\x80\x05 torn")
    elif damage == "array":
        arrays[0].write_bytes(arrays[0].read_bytes()[:20])
    else:
        arrays[-1].unlink()

    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed[-1] == 300  # the log after the older snapshot
    assert all_rows(recovered) == all_rows(_reference(items, events))
    reopened.close(snapshot=False)


def test_an_unfinished_snapshot_and_an_old_single_file_one_are_ignored(tmp_path: Path) -> None:
    events = make_events(300, seed=11)
    path = tmp_path / "data"
    datadir = DataDir(path, settings())
    engine = datadir.open_engine()
    for batch in chunks(events, 100):
        engine.ingest(batch)
    datadir.close(snapshot=False)
    snapshots = path / "snapshots"
    (snapshots / "snapshot-00000009-000000000000.tmp" / "arrays").mkdir(parents=True)
    (snapshots / "snapshot-00000000-000000000100.bin").write_bytes(b"a snapshot of an older version")

    reopened = DataDir(path, settings())
    replayed: list[int] = []
    recovered = reopened.open_engine(progress=replayed.append)
    assert replayed[-1] == 300  # the whole log
    assert all_rows(recovered) == all_rows(_reference([], events))
    reopened.snapshot()
    reopened.close(snapshot=False)
    assert [p.name for p in snapshots.iterdir() if p.name.endswith(".tmp")] == []


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A real write failure: the kernel refuses bytes past ``limit`` (EFBIG; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_failed_append_keeps_nothing_and_the_log_goes_on(tmp_path: Path) -> None:
    log = EventLog(tmp_path, fsync=True)
    log.append([rec(i) for i in range(10)])
    before = log.position()
    segment = tmp_path / "00000000.log"
    size = segment.stat().st_size
    big = [{"op": "events", "pad": "x" * 5000, "n": n} for n in range(4)]
    with file_size_limit(size + 3000):  # part of the append fits: the kernel writes it, then refuses
        with pytest.raises(LogWriteFailed, match="could not be written"):
            log.append(big)
        assert segment.stat().st_size == size  # the part that was written is cut off again
        assert log.position() == before
        log.append([rec(10)])  # small appends that fit still work
    log.append(big)  # space is back
    log.close()
    reopened = EventLog(tmp_path)
    got = [r for r, _ in reopened.read_from(Position(0, 0))]
    reopened.close()
    assert got == [rec(i) for i in range(11)] + big


def test_a_snapshot_that_cannot_be_written_leaves_no_partial_directory(tmp_path: Path) -> None:
    engine = Engine(load_settings(None))
    engine.ingest(
        [{"user_id": "u", "item_id": f"i{n}", "type": "view", "timestamp": 1e9 + n} for n in range(50)]
    )
    final = tmp_path / "snapshot-00000000-000000000100"
    with file_size_limit(64), pytest.raises(OSError):
        on_disk.write(engine.snapshot(), final)
    assert list(tmp_path.iterdir()) == []
