"""HTTP load generator of the serving benchmark, run in its own process (asyncio, raw keep-alive sockets).

* :func:`open_loop`: requests are *scheduled* at a fixed rate and each latency is measured from its scheduled
  time, so a slow server is charged for the queue it causes (no coordinated omission); requests that are not
  answered within ``timeout`` seconds of their scheduled time count as errors (waiting for one of the
  ``connections`` included), as do non-200 answers.
* :func:`closed_loop`: ``connections`` clients send back to back for ``seconds``: the maximum throughput.
* :func:`freshness`: POST one event, then read the user's recommendations until they show it.

The client speaks just enough HTTP/1.1 (Content-Length bodies, keep-alive), so it costs microseconds per
request and leaves the server's core to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import orjson


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    if not latencies_ms:
        return {
            "p50_ms": float("nan"),
            "p99_ms": float("nan"),
            "p999_ms": float("nan"),
            "max_ms": float("nan"),
        }
    return {
        "p50_ms": statistics.median(latencies_ms),
        "p99_ms": percentile(latencies_ms, 0.99),
        "p999_ms": percentile(latencies_ms, 0.999),
        "max_ms": max(latencies_ms),
    }


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


async def _open_loop(
    port: int, paths: Sequence[str], rate: float, seconds: float, connections: int, timeout: float
) -> dict[str, Any]:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = {"status": 0, "timeout": 0, "connection": 0}
    n = max(1, int(rate * seconds))

    async def one(path: str, scheduled: float) -> None:
        # the deadline runs from the scheduled time: waiting for a free connection counts too
        deadline = scheduled + timeout
        try:
            conn = await asyncio.wait_for(pool.get(), max(0.0, deadline - time.perf_counter()))
        except TimeoutError:
            errors["timeout"] += 1
            return
        try:
            status, _ = await asyncio.wait_for(
                conn.request("GET", path), max(0.0, deadline - time.perf_counter())
            )
        except TimeoutError:
            errors["timeout"] += 1
            conn.close()
            conn = await Connection.open(port)
        except (OSError, asyncio.IncompleteReadError):
            errors["connection"] += 1
            conn.close()
            conn = await Connection.open(port)
        else:
            if status == 200:
                latencies.append((time.perf_counter() - scheduled) * 1000)
            else:
                errors["status"] += 1
        pool.put_nowait(conn)

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return {
        "rate": rate,
        "requests": n,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "achieved_per_s": len(latencies) / elapsed,
        **summary(latencies),
    }


async def _closed_loop(port: int, paths: Sequence[str], seconds: float, connections: int) -> dict[str, Any]:
    done = 0
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done, errors
        conn = await Connection.open(port)
        i = offset
        try:
            while time.perf_counter() < stop:
                status, _ = await conn.request("GET", paths[i % len(paths)])
                done += 1
                errors += status != 200
                i += connections
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(connections)))
    elapsed = time.perf_counter() - started
    return {"requests": done, "errors": errors, "per_s": done / elapsed, "connections": connections}


async def _freshness(
    port: int,
    probes: Sequence[tuple[str, float, float]],
    strategy: str,
    deadline_s: float,
    poll_s: float,
    read_connections: int = 4,
) -> dict[str, Any]:
    """For each (user, event time): the user's top item is purchased; visible when it leaves their answer.

    The reads after the POST rotate over ``read_connections`` other connections, which the server's
    processes accepted independently: "visible" means visible in the next answer of whichever process
    serves it, not only of the one that took the write.
    """
    conn = await Connection.open(port)
    readers = [await Connection.open(port) for _ in range(read_connections)]
    visible: list[float] = []
    posts: list[float] = []
    skipped = failed = 0
    reads = 0
    try:
        for user, ts, gap in probes:
            if gap:
                await asyncio.sleep(gap)
            path = f"/v1/users/{user}/recommendations?k=20&strategy={strategy}"
            status, body = await conn.request("GET", path)
            items = orjson.loads(body)["items"] if status == 200 else []
            if not items:
                skipped += 1
                continue
            target = items[0]["item_id"]
            event = {
                "event_id": f"fresh-{ts:.3f}",  # unique over runs on one state (start times differ)
                "user_id": user,
                "item_id": target,
                "type": "purchase",
                "timestamp": ts,
            }
            started = time.perf_counter()
            status, _ = await conn.request("POST", "/v1/events", orjson.dumps([event]))
            posts.append((time.perf_counter() - started) * 1000)
            if status not in (200, 202):
                failed += 1
                continue
            while True:
                status, body = await readers[reads % len(readers)].request("GET", path)
                reads += 1
                seen = status == 200 and all(i["item_id"] != target for i in orjson.loads(body)["items"])
                elapsed = time.perf_counter() - started
                if seen:
                    visible.append(elapsed * 1000)
                    break
                if elapsed > deadline_s:
                    failed += 1
                    break
                if poll_s:
                    await asyncio.sleep(poll_s)
    finally:
        conn.close()
        for reader in readers:
            reader.close()
    return {
        "probes": len(visible),
        "read_connections": read_connections,
        "skipped_empty": skipped,
        "failed": failed,
        "reads_per_probe": reads / max(1, len(visible) + failed),
        "post": summary(posts),
        **summary(visible),
    }


async def _drain(port: int, quiet_ms: float, timeout: float) -> float:
    """Wait until ``/health`` answers within ``quiet_ms``: the server has worked off every abandoned request.

    A request the client gave up on (timed out) is still processed by the server, so after an overloaded run
    the server is busy with that backlog for a while; the next measurement must not start before it is done.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        conn = await Connection.open(port)
        try:
            t = time.perf_counter()
            await conn.request("GET", "/health")
            if (time.perf_counter() - t) * 1000 <= quiet_ms:
                return time.perf_counter() - started
        finally:
            conn.close()
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        return asyncio.run(coro)
    with contextlib.suppress(AttributeError):
        return uvloop.run(coro)
    return asyncio.run(coro)  # pragma: no cover


def open_loop(
    port: int, paths: Sequence[str], rate: float, seconds: float, connections: int = 64, timeout: float = 2.0
) -> dict[str, Any]:
    result: dict[str, Any] = _run(_open_loop(port, paths, rate, seconds, connections, timeout))
    return result


def closed_loop(port: int, paths: Sequence[str], seconds: float, connections: int = 8) -> dict[str, Any]:
    result: dict[str, Any] = _run(_closed_loop(port, paths, seconds, connections))
    return result


def freshness(
    port: int,
    users: Sequence[str],
    start_ts: float,
    probes: int,
    strategy: str = "personalized",
    seed: int = 1,
    gap_s: float = 0.0,
    poll_s: float = 0.0,
) -> dict[str, Any]:
    """``probes`` probes of random users, after random pauses of 0..``gap_s``; reads ``poll_s`` apart."""
    rng = random.Random(seed)
    plan = [(rng.choice(users), start_ts + n * 0.001, rng.uniform(0, gap_s)) for n in range(probes)]
    result: dict[str, Any] = _run(_freshness(port, plan, strategy, 10.0, poll_s))
    return result


def drain(port: int, quiet_ms: float = 20.0, timeout: float = 600.0) -> float:
    """Seconds until the server answers ``/health`` within ``quiet_ms`` again (see :func:`_drain`)."""
    waited: float = _run(_drain(port, quiet_ms, timeout))
    return waited
