"""A whole distributed deployment for fault tests: one API replica and ``freshrec worker`` processes on a
Valkey server and a Tansu broker, each process started here and stopped by its PID.

:class:`Deployment` posts through the replica (as an application would), kills and pauses workers, and waits
for the workers to catch up; :class:`Oracle` computes the expected answers from the posted events alone, in
DuckDB from the SQL of SPEC §3-§4 (:func:`support.build_reference`), never from the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from freshrec.bench.processes import stop_process
from freshrec.config import Settings, load_settings
from freshrec.distributed.setup import open_engine
from freshrec.engine import Engine
from support import build_reference, query, row_differences, same_value
from support.redis_server import free_port

Row = dict[str, Any]

#: Settings of every process: the event clock (the streams are in the past), no embedding model, a short
#: session so that a dead worker's partitions move within seconds, four partitions, batches of 200.
ENV = {
    "FRESHREC_CLOCK": "event",
    "FRESHREC_EMBEDDINGS__MODEL": "none",
    "FRESHREC_CF__ENABLED": "false",
    "FRESHREC_KAFKA__SESSION_TIMEOUT_MS": "2000",
    "FRESHREC_KAFKA__PARTITIONS": "4",
    "FRESHREC_KAFKA__BATCH_SIZE": "200",
    # late arrivals keep their co-visit partners, as the SQL self-join does (see views.covisit)
    "FRESHREC_VIEWS__CO_VISIT_ALLOWED_LATENESS_SECONDS": str(40 * 86_400),
}
K = 20


class Deployment:
    """The processes of one deployment: a replica on ``api`` and the workers it holds in ``workers``."""

    def __init__(self, redis_url: str, bootstrap: str, name: str) -> None:
        self.state = f"{redis_url}?prefix={name}"
        self.bootstrap = bootstrap
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.settings: Settings = load_settings(
            clock="event",
            embeddings={"model": "none"},
            cf={"enabled": False},
            state=self.state,
            kafka={"session_timeout_ms": 2000, "partitions": 4, "bootstrap": bootstrap},
            views={"co_visit_allowed_lateness_seconds": 40 * 86_400},
        )
        self.client = httpx.Client(base_url=self.api, timeout=30)
        self._reader: Engine | None = None

    # -- processes --------------------------------------------------------------------------------------
    def run(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``python -m`` ``args`` with the deployment's settings; its output goes to a log file."""
        log = Path(tempfile.mkstemp(prefix="freshrec-proc-", suffix=".log")[1])
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, *args],
                env={**os.environ, **ENV, **(env or {})},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.logs[proc.pid] = log
        self.started.append(proc)
        return proc

    def start_replica(self) -> None:
        self.run("-m", "freshrec.cli", "serve", "--state", self.state, "--kafka", self.bootstrap,
                 "--port", str(self.port))  # fmt: skip
        self.wait_for(self._healthy, 60, "the API replica")

    def start_worker(self, *, script: str | None = None) -> subprocess.Popen[bytes]:
        """A ``freshrec worker``, or ``script`` (Python code run with the worker's arguments in argv)."""
        args = ("worker", "--state", self.state, "--kafka", self.bootstrap)
        proc = self.run("-c", script, *args) if script else self.run("-m", "freshrec.cli", *args)
        self.workers.append(proc)
        return proc

    def signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Send ``sig`` to one started process (by its PID); a SIGKILLed worker leaves ``workers``."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()
            self.workers.remove(proc)

    def assigned(self, proc: subprocess.Popen[bytes]) -> bool:
        """The worker logged an assignment of events partitions."""
        return "freshrec.events[" in self.output(proc)

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        log = self.logs.get(proc.pid)
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    def close(self) -> None:
        self.client.close()
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
            stop_process(proc, signal.SIGTERM, 15.0)
        for log in self.logs.values():
            log.unlink(missing_ok=True)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for proc in self.started:
                if proc.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    raise AssertionError(
                        f"a process exited with {proc.returncode}:\n{self.output(proc)[-3000:]}"
                    )
            time.sleep(0.05)
        logs = "\n---\n".join(self.output(p)[-2000:] for p in self.started)
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; output:\n{logs}")

    def _healthy(self) -> bool:
        try:
            return self.client.get("/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    # -- writes and reads through the replica ---------------------------------------------------------
    def put_items(self, items: Sequence[Mapping[str, Any]]) -> None:
        for item in items:
            response = self.client.put(f"/v1/items/{item['item_id']}", json=dict(item))
            assert response.status_code == 202, response.text

    def post_events(self, chunk: Sequence[Mapping[str, Any]]) -> None:
        response = self.client.post("/v1/events", json=list(chunk))
        assert response.status_code == 202, response.text

    def top(self, user: str) -> list[tuple[str, float]]:
        body = self.client.get(
            f"/v1/users/{user}/recommendations", params={"strategy": "personalized", "k": K}
        ).json()
        return [(i["item_id"], float(i["score"])) for i in body["items"]]

    @property
    def reader(self) -> Engine:
        """An engine on the shared state (it applies nothing): counters, views and rankings in Redis."""
        if self._reader is None:
            self._reader, _ = open_engine(self.settings)
        return self._reader

    def applied(self) -> int:
        return self.reader.total_applied()[0]

    def catalog_is(self, items: Sequence[Mapping[str, Any]]) -> bool:
        """The shared catalog holds exactly ``items`` (their category, brand, price and stock)."""
        self.reader.sync_catalog()
        have = self.reader.catalog.items
        return len(have) == len(items) and all(
            i["item_id"] in have and _attrs(dataclasses.asdict(have[i["item_id"]])) == _attrs(i)
            for i in items
        )

    def settle(self, unique: int, timeout: float = 90.0) -> int:
        """Wait until ``unique`` events were applied (more would be double counts), then a moment more."""
        self.wait_for(lambda: self.applied() >= unique, timeout, f"{unique} events applied")
        time.sleep(0.5)
        return self.applied()


def _attrs(item: Mapping[str, Any]) -> tuple[Any, ...]:
    return (*(item.get(a) for a in ("category", "brand", "price")), item.get("in_stock", True))


_PERSONALIZED_SQL = """
WITH catalog AS (
    SELECT i.item_id, i.category, i.brand, i.in_stock,
           CASE WHEN i.price IS NULL THEN NULL
                WHEN i.price < 25 THEN 'budget' WHEN i.price < 100 THEN 'mid-range'
                WHEN i.price < 500 THEN 'premium' ELSE 'luxury' END AS price_tier,
           coalesce(p.weighted_total, 0.0) AS pop
    FROM items i LEFT JOIN v_item_popularity p USING (item_id)
), users AS (SELECT DISTINCT user_id FROM events), scored AS (
    SELECT u.user_id, c.item_id, c.pop,
           0.4::DOUBLE * coalesce(ucp.affinity_score, 0.0)
             + 0.3::DOUBLE * coalesce(ubp.brand_affinity, 0.0)
             + 30.0::DOUBLE * coalesce(ups.conversion_rate, 0.0) AS score
    FROM users u CROSS JOIN catalog c
    LEFT JOIN v_user_category_profile ucp ON ucp.user_id = u.user_id AND ucp.category = c.category
    LEFT JOIN v_user_brand_profile ubp ON ubp.user_id = u.user_id AND ubp.brand = c.brand
    LEFT JOIN v_user_price_sensitivity ups ON ups.user_id = u.user_id AND ups.price_tier = c.price_tier
    WHERE c.in_stock AND c.item_id NOT IN (
        SELECT e.item_id FROM events e WHERE e.user_id = u.user_id AND e.type = 'purchase')
)
SELECT user_id, item_id, score FROM scored
QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY round(score, 9) DESC, pop DESC, item_id) <= {k}
ORDER BY user_id, round(score, 9) DESC, pop DESC, item_id
"""


class Oracle:
    """SPEC answers for a catalog and the events posted so far (re-sends counted once), from DuckDB."""

    def __init__(self, items: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> None:
        self.items = list(items)
        self.events = list(events)
        self.unique = len({e["event_id"] for e in events})
        self.db = build_reference(self.items, self.events)

    def personalized(self) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list[tuple[str, float]]] = {}
        for row in query(self.db, _PERSONALIZED_SQL.format(k=K)):
            out.setdefault(row["user_id"], []).append((row["item_id"], float(row["score"])))
        return out

    def view(self, name: str) -> list[Row]:
        return query(self.db, f"SELECT * FROM v_{name}")

    def popularity_by_category(self) -> dict[str, list[tuple[str, float]]]:
        """Each catalog item's lifetime weighted total (0 without events) per catalog category, best first."""
        rows = query(
            self.db,
            """SELECT i.category, i.item_id, coalesce(p.weighted_total, 0.0) AS total
               FROM items i LEFT JOIN v_item_popularity p USING (item_id)""",
        )
        out: dict[str, list[tuple[str, float]]] = {}
        for row in sorted(rows, key=lambda r: (-r["total"], r["item_id"])):
            out.setdefault(row["category"], []).append((row["item_id"], float(row["total"])))
        return out


def personalized_differences(deployment: Deployment, oracle: Oracle) -> list[str]:
    """Users whose personalized top 20 through the replica differs from the oracle's."""

    def same(a: tuple[str, float], b: tuple[str, float]) -> bool:
        return a[0] == b[0] and math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-9)

    problems = []
    for user, want in sorted(oracle.personalized().items()):
        got = deployment.top(user)
        if len(want) == len(got) and all(same(w, g) for w, g in zip(want, got, strict=True)):
            continue
        first = next((n for n, (w, g) in enumerate(zip(want, got, strict=False)) if not same(w, g)), 0)
        problems.append(
            f"{user}: rank {first}: SQL {want[first : first + 2]} engine {got[first : first + 2]}"
        )
    return problems


def pair_differences(deployment: Deployment, oracle: Oracle) -> list[str]:
    """``co_visits`` and ``also_bought`` (keyed by item pairs) against their SQL."""
    reader = deployment.reader
    co = row_differences(
        oracle.view("co_visits"), reader.view_rows("co_visits"), ("before_item", "after_item"), ("frequency",)
    )
    also = row_differences(
        oracle.view("also_bought"), reader.view_rows("also_bought"), ("item_id", "other_item_id"), ("users",)
    )
    return [f"co_visits: {p}" for p in co] + [f"also_bought: {p}" for p in also]


def ranking_differences(deployment: Deployment, oracle: Oracle) -> list[str]:
    """The per-category popularity rankings in Redis against the SQL totals by final catalog category."""
    store = deployment.reader.store
    problems = []
    for category, want in sorted(oracle.popularity_by_category().items()):
        got = list(store.rank_iter("popularity_rank", ("category", category)))
        if len(got) != len(want) or not all(
            a == c and same_value(b, d) for (a, b), (c, d) in zip(want, got, strict=True)
        ):
            problems.append(
                f"popularity of {category}: SQL {want[:3]}... ({len(want)}) got {got[:3]}... ({len(got)})"
            )
    return problems


@contextlib.contextmanager
def deployment(redis_url: str, bootstrap: str, name: str) -> Iterator[Deployment]:
    running = Deployment(redis_url, bootstrap, name)
    try:
        yield running
    finally:
        running.close()
