"""The Markdown report of ``freshrec bench`` and its plot (a PNG beside it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _n(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = r.get("ingest_grid") or []
    serving = (r.get("serving") or {}).get("strategies") or {}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    labels = [f"{p['users']:,}\n× {p['items']:,}" for p in grid]
    axes[0].bar(labels, [p["ingest_events_per_s"] for p in grid], color="#3b7dd8")
    axes[0].set_title("ingestion, events/s on one core")
    axes[0].set_xlabel("users × items")
    axes[1].bar(labels, [p["state_bytes_per_user"] / 1024 for p in grid], color="#d8843b")
    axes[1].set_title(
        f"state per user, KiB ({grid[0]['warm_events_per_user'] if grid else 0} events each + stream)"
    )
    axes[1].set_xlabel("users × items")
    for strategy, runs in serving.items():
        rates = [int(rate) for rate in runs]
        axes[2].plot(rates, [runs[str(rate)]["p99_ms"] for rate in rates], marker="o", label=strategy)
    axes[2].set_yscale("log")
    axes[2].set_title("recommendations p99 (ms) at a fixed rate")
    axes[2].set_xlabel("requests/s (open loop)")
    if serving:
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict[str, Any], command: str, plot_name: str | None) -> str:
    m, v = r["machine"], r["versions"]
    out = [
        f"# freshrec bench ({r['sizes']} sizes)",
        "",
        f"`{command}`, {_n(r['seconds'] / 60)} min. Machine: {m['cpus']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB, {m['system']}; Python {v['python']}, "
        + ", ".join(f"{k} {val}" for k, val in v.items() if k != "python" and val)
        + ".",
        "",
        "## SPEC §9 targets",
        "",
    ]
    rows = [[f"`{key}`", t["target"], _n(t["value"], 2), _n(t["met"])] for key, t in r["targets"].items()]
    out += _table(["figure", "target", "measured", "met"], rows)
    if plot_name:
        out += [f"![ingestion, state and latency]({plot_name})", ""]
    grid = r.get("ingest_grid") or []
    if grid:
        out += ["## Ingestion and state, one core, every view", ""]
        rows = [
            [
                _n(p["users"]),
                _n(p["items"]),
                _n(p["measured_events"]),
                _n(p["ingest_events_per_s"]),
                _n(p["validate_events_per_s"]),
                _n(p["state_bytes_per_user"]),
                _n(p["state_bytes_per_item"]),
            ]
            for p in grid
        ]
        out += _table(
            [
                "users",
                "items",
                "measured events",
                "apply events/s",
                "validate events/s",
                "bytes/user",
                "bytes/item",
            ],
            rows,
        )
    served = [p for p in grid if "snapshot_s" in p]
    if served:
        p = served[0]
        restart = (r.get("serving") or {}).get("restart_s")
        out += [
            f"Snapshot at {_n(p['users'])} users × {_n(p['items'])} items (after the warm-up): "
            f"{_n(p['snapshot_bytes'] / 2**20)} MiB written in {_n(p['snapshot_s'], 2)} s by a forked "
            f"process; ingestion held {_n(p['snapshot_pause_ms'], 2)} ms (the fork). "
            + (
                f"Restart from it plus a log tail of {_n(p['measured_events'])} events: "
                f"{_n(restart, 2)} s to the first `/health` answer."
                if restart is not None
                else ""
            ),
            "",
        ]
    parts = grid[0].get("state_bytes_per_user_by_part") if grid else None
    if parts:
        out += [f"Bytes per user by view at {_n(grid[0]['users'])} users (deep `sys.getsizeof`):", ""]
        out += _table(
            ["part/view", "bytes/user"], [[f"`{k}`", _n(v, 0)] for k, v in list(parts.items())[:16]]
        )
    if "redis" in r:
        red = r["redis"]
        out += ["## Redis state (in process, Valkey on loopback)", ""]
        rows = [
            [name, _n(p["ingest_events_per_s"]), _n(p["state_bytes_per_user"])]
            for name, p in (("memory", red["memory"]), ("Redis", red["redis"]))
        ]
        out += _table(["state", "apply events/s", "bytes/user"], rows)
        out += [f"memory / Redis: {_n(red['memory_over_redis'])}×", ""]
    if "distributed" in r:
        d = r["distributed"]
        out += [
            "## Distributed freshness (replica → Kafka → worker → Redis → replica)",
            "",
            f"{d['probes']} probes on {_n(d['users'])} users × {_n(d['items'])} items: POST → visible in the "
            f"replica's answer p50 {_n(d['p50_ms'], 2)} ms, p99 {_n(d['p99_ms'], 2)} ms; the POST "
            f"(202 on the broker's ack) p50 {_n(d['post']['p50_ms'], 2)} ms, "
            f"p99 {_n(d['post']['p99_ms'], 2)} ms.",
            "",
        ]
    if "serving" in r:
        s = r["serving"]
        f = s["freshness"]
        out += [
            f"## Serving {_n(s['users'])} users × {_n(s['items'])} items (`freshrec serve`, loopback HTTP)",
            "",
            f"Freshness (POST of a purchase → the item has left the user's answer, {f['probes']} probes): "
            f"p50 {_n(f['p50_ms'], 2)} ms, p99 {_n(f['p99_ms'], 2)} ms; the POST alone p50 "
            f"{_n(f['post']['p50_ms'], 2)} ms, p99 {_n(f['post']['p99_ms'], 2)} ms.",
            "",
        ]
        rows = []
        for strategy, runs in s["strategies"].items():
            for rate, run in runs.items():
                rows.append(
                    [
                        strategy,
                        rate,
                        _n(run["achieved_per_s"]),
                        _n(run["p50_ms"], 2),
                        _n(run["p99_ms"], 2),
                        _n(run["p999_ms"], 2),
                        _n(run["errors"]),
                        _n(run.get("drain_seconds"), 1),
                    ]
                )
        out += _table(
            ["strategy", "req/s", "answered/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "backlog s"], rows
        )
        t = s["throughput"]
        rows = [[name, _n(t[name]["per_s"]), _n(t[name]["per_s"] / t["health"]["per_s"], 3)] for name in t]
        out += ["Maximum throughput (closed loop, 8 connections):", ""]
        out += _table(["endpoint", "req/s", "ratio to /health"], rows)
    if "sql" in r:
        q = r["sql"]
        out += [f"## The same answers in SQL per request ({_n(q.get('events'))} events)", ""]
        rows = []
        for strategy, fr in q["freshrec"].items():
            row = [strategy, _n(fr["p50_ms"], 3), _n(fr["p99_ms"], 3)]
            for engine in ("duckdb", "postgres"):
                e = q.get(engine, {}).get(strategy, {})
                row += [
                    _n(e.get("p50_ms"), 2),
                    _n(e.get("agreement"), 3),
                    _n(q.get(f"ratio_vs_{engine}", {}).get(strategy)),
                ]
            rows.append(row)
        head = ["strategy", "freshrec p50 ms", "p99 ms"]
        head += ["DuckDB p50 ms", "agreement", "ratio", "PostgreSQL p50 ms", "agreement", "ratio"]
        out += _table(head, rows)
    if "stream" in r:
        st = r["stream"]
        out += [
            f"## The same views in a stream processor ({st.get('library')} {st.get('version')})",
            "",
            f"{_n(st.get('events'))} events: {st.get('library')} {_n(st.get('events_per_s'))} events/s on "
            f"{st.get('threads')} thread(s), freshrec {_n(st.get('freshrec_events_per_s'))} events/s: "
            f"{_n(st.get('ratio_freshrec_over_library'), 2)}×. Views: {', '.join(st.get('views', []))}.",
            "",
        ]
    return "\n".join(out)
