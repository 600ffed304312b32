"""A full disk under a real server: writes answer 503 and store nothing, reads go on, and once space
returns the same requests are accepted; after a crash every view equals its DuckDB definition.

The data directory is on a small tmpfs mounted by the test (that needs root, as on the CI machine); a
ballast file fills it. What the client sent during the outage is sent again afterwards, the way an
at-least-once producer does, and nothing is lost or counted twice.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_kill_loop import CHUNK, DATASET, ENV, assert_views_equal_sql, held_events

from support import dataset

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.heavy


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs, unmounted when the test ends."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk has no byte left."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as fh:
        for block in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return ballast


def test_a_full_disk_refuses_writes_with_503_and_loses_nothing(
    small_disk: Path, start_server: StartServer
) -> None:  # the disk first: it is unmounted after the server stopped
    items, events = dataset(DATASET)
    chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    server = start_server(clock="event", env=ENV, data_dir=small_disk / "data")
    for start in range(0, len(items), 200):
        server.put_items(items[start : start + 200])
    half = len(chunks) // 2
    for chunk in chunks[:half]:
        server.send_events(chunk)
    held = held_events(server)
    user = chunks[0][0]["user_id"]

    ballast = fill(small_disk)
    refused = chunks[half : half + 5]
    for chunk in refused:
        response = server.post_events(chunk)
        assert response.status_code == 503, response.text
        assert "cannot be written" in response.json()["error"]
        assert response.headers["retry-after"]
    assert held_events(server) == held  # nothing of the refused requests was applied
    # reads are served meanwhile
    answer = server.get_json(f"/v1/users/{user}/recommendations", strategy="personalized", k=5)
    assert answer["items"]
    assert server.get("/health").status_code == 200

    ballast.unlink()  # space returns: the producer sends the refused requests again, then the rest
    for chunk in chunks[half:]:
        server.send_events(chunk)
    distinct = {e["event_id"] for e in events}
    assert held_events(server) == len(distinct)

    server.restart(crash=True)  # the log has no damaged record where the failed appends were cut back
    assert held_events(server) == len(distinct)
    assert_views_equal_sql(server)
    assert "Traceback" not in server.stderr()
