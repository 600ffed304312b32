"""``freshrec demo``: a real server, a generated shop, its clickstream replayed live, one user watched.

The server runs in this process on the event clock (``now`` = the newest event time), so windows of the
replayed hours behave as they did when the events happened. Everything goes through HTTP, as an
application would use it.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.demo.scenario import Scenario, generate_scenario, summary
from freshrec.storage.datadir import DataDir

TICK_SECONDS = 0.05
CATALOG_BATCH = 64
WATCH_DEPTH = 100  # recommendations fetched; the panel shows the first 8


@dataclass
class Watch:
    """What the live panel shows about the spotlight user."""

    user: str
    profile: dict[str, Any] = field(default_factory=dict)
    recs: list[dict[str, Any]] = field(default_factory=list)
    trending: list[dict[str, Any]] = field(default_factory=list)
    story: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    # (event time, the category the user is most active in over the last 3 h, best rank of an item of it)
    focus: list[tuple[float, str, int | None]] = field(default_factory=list)

    def focus_rank(self, items: dict[str, dict[str, Any]], category: str) -> int | None:
        for n, rec in enumerate(self.recs, 1):
            if items.get(rec["item_id"], {}).get("category") == category:
                return n
        return None


def _start_server(port: int, data_dir: Path) -> tuple[uvicorn.Server, threading.Thread, DataDir]:
    settings = load_settings(clock="event")
    datadir = DataDir(data_dir, settings)
    engine = datadir.open_engine()
    app = create_app(engine, datadir)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="freshrec-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the demo server did not start on port {port} (is the port free? try --port)")
        time.sleep(0.02)
    return server, thread, datadir


def _refresh(client: httpx.Client, watch: Watch, items: dict[str, dict[str, Any]], at: float) -> None:
    started = time.perf_counter()
    response = client.get(
        f"/v1/users/{watch.user}/recommendations", params={"k": WATCH_DEPTH, "explain": "true"}
    )
    watch.latencies_ms.append((time.perf_counter() - started) * 1000)
    watch.recs = response.json()["items"]
    watch.profile = client.get(f"/v1/users/{watch.user}/profile", params={"limit": 5}).json()
    watch.trending = client.get("/v1/trending", params={"k": 5}).json()["items"]
    recent = watch.profile.get("recent_categories") or []
    if recent:
        category = recent[0]["category"]
        watch.focus.append((at, category, watch.focus_rank(items, category)))


def _label(items: dict[str, dict[str, Any]], item_id: str) -> str:
    item = items.get(item_id, {})
    facts = f"{item.get('category')}, {item.get('brand')}, ${item.get('price', 0):.0f}"
    return f"{item.get('title', item_id)} [dim]({facts})[/]"


def score_cell(score: float, reasons: dict[str, Any]) -> str:
    """The blended score, or what put the item there when it has none (a session-intent slot, a fallback).

    >>> score_cell(0.0, {"session_intent": "fashion"}), score_cell(0.41, {"personalized": 0.41})
    ('slot', '0.410')
    """
    if score == 0.0 and "session_intent" in reasons:
        return "slot"
    if score == 0.0 and "fallback" in reasons:
        return "fallback"
    return f"{score:.3f}"


def _panel(watch: Watch, items: dict[str, dict[str, Any]], progress: Progress) -> Group:
    categories = Table(title="profile: categories", expand=True, title_justify="left")
    categories.add_column("category")
    categories.add_column("affinity", justify="right")
    categories.add_column("last 3 h", justify="right")
    recent = {r["category"]: r["recent_score"] for r in watch.profile.get("recent_categories", [])}
    for row in watch.profile.get("top_categories", [])[:5]:
        categories.add_row(
            row["category"], f"{row['affinity_score']:.0f}", f"{recent.get(row['category'], 0):.0f}"
        )
    recs = Table(title=f"recommendations for {watch.user} (hybrid)", expand=True, title_justify="left")
    recs.add_column("#", justify="right")
    recs.add_column("item")
    recs.add_column("score", justify="right")
    recs.add_column("why")
    for n, rec in enumerate(watch.recs[:8], 1):
        reasons = rec.get("reasons") or {}
        why = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in reasons.items())
        recs.add_row(str(n), _label(items, rec["item_id"]), score_cell(rec["score"], reasons), why)
    trending = Table(title="trending now", expand=True, title_justify="left")
    trending.add_column("item")
    trending.add_column("score", justify="right")
    for rec in watch.trending:
        trending.add_row(_label(items, rec["item_id"]), f"{rec['score']:.0f}")
    story = Panel("\n".join(watch.story[-6:]) or "…", title=f"what {watch.user} is doing", title_align="left")
    tier = watch.profile.get("preferred_price_tier")
    if watch.focus:
        _, category, rank = watch.focus[-1]
        where = f"#{rank}" if rank is not None else f"not in the top {WATCH_DEPTH}"
        recs.caption = (
            f"most active in the last 3 h: [bold]{category}[/]; its best item ranks {where}. "
            "slot: a session-intent place (every 3rd), given to the best item of a recent category"
        )
    lat = watch.latencies_ms[-200:]
    footer = (
        f"preferred price tier: [bold]{tier}[/]   "
        f"recommendation latency (HTTP, this client): p50 {statistics.median(lat):.1f} ms"
        if lat
        else ""
    )
    return Group(progress, story, categories, recs, trending, footer)


def run_demo(
    *,
    rate: float,
    users: int,
    items: int,
    port: int,
    seed: int,
    duration: float | None,
    keep_serving: bool,
    console: Console,
) -> int:
    """Run the demo; returns the process exit code."""
    # httpx logs every request at INFO: thousands of lines over the live display
    logging.getLogger("httpx").setLevel(logging.WARNING)
    scenario: Scenario = generate_scenario(n_users=users, n_items=items, seed=seed)
    facts = summary(scenario)
    console.print(f"[bold]freshrec demo[/] — a generated shop: {facts}")
    by_id = {i["item_id"]: i for i in scenario.items}
    with tempfile.TemporaryDirectory(prefix="freshrec-demo-") as tmp:
        server, thread, _ = _start_server(port, Path(tmp))
        base = f"http://127.0.0.1:{port}"
        console.print(f"server: {base}  (API docs: {base}/docs; data dir {tmp})")
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                _load_catalog(client, scenario.items, console)
                _replay(client, scenario, by_id, rate, duration, console)
            if keep_serving:
                console.print(f"[green]still serving[/] on {base} — Ctrl+C to stop")
                while thread.is_alive():
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    return 0


def _load_catalog(client: httpx.Client, items: list[dict[str, Any]], console: Console) -> None:
    """Upsert the catalog in small batches: each item's text is embedded on the way in (slow)."""
    started = time.perf_counter()
    columns = (TextColumn("loading the catalog (embedding titles)"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("items", total=len(items))
        for start in range(0, len(items), CATALOG_BATCH):
            batch = items[start : start + CATALOG_BATCH]
            client.post("/v1/items", json=batch).raise_for_status()
            progress.advance(task, len(batch))
    console.print(f"catalog: {len(items):,} items loaded in {time.perf_counter() - started:.0f} s")


def _replay(
    client: httpx.Client,
    scenario: Scenario,
    items: dict[str, dict[str, Any]],
    rate: float,
    duration: float | None,
    console: Console,
) -> None:
    watch = Watch(scenario.spotlight_user)
    story = list(scenario.spotlight_story)
    events = scenario.events
    per_tick = max(1, round(rate * TICK_SECONDS))
    progress = Progress(
        TextColumn("replaying clickstream"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("events", total=len(events), speed="")
    started = time.perf_counter()
    last_refresh = 0.0
    sent = 0
    with Live(_panel(watch, items, progress), console=console, refresh_per_second=4) as live:
        while sent < len(events):
            if duration is not None and time.perf_counter() - started > duration:
                break
            batch = events[sent : sent + per_tick]
            client.post("/v1/events", json=batch).raise_for_status()
            sent += len(batch)
            now_ts = batch[-1]["timestamp"]
            while story and story[0][0] <= now_ts:
                watch.story.append(story.pop(0)[1])
            touched = any(e["user_id"] == watch.user for e in batch)
            elapsed = time.perf_counter() - started
            if touched or elapsed - last_refresh > 0.5:
                _refresh(client, watch, items, now_ts)
                last_refresh = elapsed
                live.update(_panel(watch, items, progress))
            progress.update(task, completed=sent, speed=f"{sent / max(elapsed, 1e-9):,.0f} events/s")
            ahead = sent / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        _refresh(client, watch, items, events[sent - 1]["timestamp"] if sent else 0.0)
        live.update(_panel(watch, items, progress))
    elapsed = time.perf_counter() - started
    lat = sorted(watch.latencies_ms)
    if not console.is_terminal:
        console.line()  # the live display ends its last line itself only on a terminal
    console.print(
        f"[green]done[/]: {sent:,} events in {elapsed:.1f} s ({sent / elapsed:,.0f} events/s).\n"
        f"{watch.user}, as the stream went on (event time; the category they were most active in over the "
        f"last 3 h; how the best-ranked item of that category placed in their hybrid recommendations):\n"
        f"{_focus_story(watch.focus)}\n"
        f"Recommendation requests: {len(lat)}, p50 {statistics.median(lat):.1f} ms, "
        f"p99 {lat[int(0.99 * (len(lat) - 1))]:.1f} ms (HTTP round trip, with the replay running)."
    )


def _focus_story(focus: list[tuple[float, str, int | None]]) -> str:
    """One line per stretch of the same focus category: when, which, and how its best item ranked."""
    lines = []
    start = 0
    for n in range(1, len(focus) + 1):
        if n == len(focus) or focus[n][1] != focus[start][1]:
            at, category, first = focus[start]
            ranks = [r for _, _, r in focus[start:n] if r is not None]
            lines.append(
                f"  {time.strftime('%H:%M', time.gmtime(at))} UTC  {category:<16} {_ranks(first, ranks)}"
            )
            start = n
    return "\n".join(lines) or "  (no activity)"


def _ranks(first: int | None, ranks: list[int]) -> str:
    """How the best item of the focus category ranked over one stretch, in words.

    >>> _ranks(7, [7, 4, 2])
    'its best item ranked #7 at first, #2 at best'
    >>> _ranks(1, [1, 3])
    'its best item ranked #1 at first, never higher'
    >>> _ranks(None, [9])
    'its best item was outside the top 100 at first, #9 at best'
    """
    if not ranks:
        return f"none of its items in the top {WATCH_DEPTH}"
    best = min(ranks)
    start = f"ranked #{first}" if first is not None else f"was outside the top {WATCH_DEPTH}"
    if first == best:
        return f"its best item {start} at first, never higher"
    return f"its best item {start} at first, #{best} at best"
