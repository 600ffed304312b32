"""The evaluation report: Markdown tables and a PNG plot beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Published MovieLens-100k numbers of the Microsoft Recommenders benchmark (top-10, 75/25 stratified split,
# 15 epochs): the "Algorithm Comparison" table of the recommenders-team/recommenders README.
PUBLISHED_MS = {
    "BiVAE": {"map": 0.146126, "ndcg@10": 0.475077, "precision@10": 0.411771, "recall@10": 0.219145},
    "BPR": {"map": 0.132478, "ndcg@10": 0.441997, "precision@10": 0.388229, "recall@10": 0.212522},
    "LightGCN": {"map": 0.088526, "ndcg@10": 0.419846, "precision@10": 0.379626, "recall@10": 0.144336},
    "NCF": {"map": 0.107720, "ndcg@10": 0.396118, "precision@10": 0.347296, "recall@10": 0.180775},
    "SAR": {"map": 0.110591, "ndcg@10": 0.382461, "precision@10": 0.330753, "recall@10": 0.176385},
}
REPLAY_METRICS = ("hr@10", "ndcg@10", "mrr", "coverage")
MS_METRICS = ("precision@10", "recall@10", "ndcg@10", "map")


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _lift(fresh: float, stale: float) -> str:
    if stale == 0.0:
        return "∞" if fresh > 0 else "–"
    return f"{100.0 * (fresh - stale) / stale:+.1f}%"


def best_replay(result: dict[str, Any], mode: str = "fresh", metric: str = "hr@10") -> str | None:
    scores = {s: m[mode][metric] for s, m in result["replay"].items() if mode in m}
    return max(scores, key=lambda s: scores[s]) if scores else None


_NAMES = {"hr@10": "HR@10", "ndcg@10": "NDCG@10", "mrr": "MRR", "coverage": "coverage"}


def _fresh_vs_stale(scores: dict[str, Any], metrics: tuple[str, ...]) -> list[str]:
    """A table with each metric fresh and stale per strategy, and the HR@10 lift after the first pair."""
    head = ["strategy"]
    for n, metric in enumerate(metrics):
        head += [f"{_NAMES[metric]} fresh", f"{_NAMES[metric]} stale", *(["lift"] if n == 0 else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, modes in scores.items():
        fresh, stale = modes.get("fresh", {}), modes.get("stale", {})
        cells = [name]
        for n, metric in enumerate(metrics):
            cells += [_f(fresh.get(metric)), _f(stale.get(metric))]
            if n == 0:
                cells.append(_lift(fresh[metric], stale[metric]) if fresh and stale else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(result: dict[str, Any], plot: Path | None) -> str:
    meta = result.get("meta", {})
    lines = [f"# freshrec evaluation: {result['dataset']}", ""]
    lines.append(
        f"{meta.get('events', 0):,} events, {meta.get('catalog_size', 0):,} items; top-{meta.get('k', 10)}; "
        f"seed {meta.get('seed')}; target sample {meta.get('sample')}; embeddings {meta.get('embeddings')}; "
        f"stale refresh every {meta.get('refresh_seconds', 86400):g} s; "
        f"{meta.get('seconds')} s in all."
    )
    lines += ["", "## Replay, predict-then-learn: fresh vs stale", ""]
    targets = meta.get("targets", {})
    lines.append(
        "Each target (a purchase, a click, or a rating of 4 or more) is predicted before it is applied. "
        f"Targets: {targets}. Fresh = state updated per event (CF retrained every refresh period, the "
        "user's newest events folded in per request); stale = state frozen at the last refresh (midnight, "
        "by default), refreshed and retrained once per period."
    )
    lines += ["", *_fresh_vs_stale(result["replay"], REPLAY_METRICS)]
    best = best_replay(result)
    if best is not None and "stale" in result["replay"][best]:
        b = result["replay"][best]
        lines += [
            "",
            f"Best fresh strategy by HR@10: **{best}**, {_lift(b['fresh']['hr@10'], b['stale']['hr@10'])} "
            "relative to stale.",
        ]
    returning = meta.get("returning")
    if returning:
        lines += [
            "",
            "### Returning users only",
            "",
            "Targets of users who had events before the last refresh (a nightly system's best case: it "
            f"knows them). Targets: {meta.get('returning_targets')}.",
            "",
            *_fresh_vs_stale(returning, ("hr@10", "ndcg@10")),
        ]
    if result.get("ms_protocol"):
        lines += ["", "## Microsoft Recommenders protocol (75/25 stratified split per user, top 10)", ""]
        lines += ["| model | precision@10 | recall@10 | nDCG@10 | MAP |", "|---|---|---|---|---|"]
        for name, m in result["ms_protocol"].items():
            lines.append(f"| freshrec {name} | " + " | ".join(_f(m.get(x)) for x in MS_METRICS) + " |")
        for name, m in PUBLISHED_MS.items():
            lines.append(f"| {name} (published) | " + " | ".join(_f(m.get(x)) for x in MS_METRICS) + " |")
    if plot is not None:
        lines += ["", f"![fresh vs stale]({plot.name})"]
    lines.append("")
    return "\n".join(lines)


def draw(result: dict[str, Any], path: Path) -> None:
    """HR@10 fresh vs stale per strategy (and MS-protocol nDCG@10 beside published numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["replay"])
    panels = 2 if result.get("ms_protocol") else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    width = 0.4
    xs = range(len(names))
    for offset, mode, color in ((-width / 2, "fresh", "#2a9d8f"), (width / 2, "stale", "#b0b0b0")):
        values = [result["replay"][n].get(mode, {}).get("hr@10", 0.0) for n in names]
        ax.bar([x + offset for x in xs], values, width, label=mode, color=color)
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("HR@10")
    ax.set_title(f"Replay: {result['dataset']}")
    ax.legend()
    if panels == 2:
        ax2 = axes[0][1]
        ms = result["ms_protocol"]
        labels = [*ms, *PUBLISHED_MS]
        values = [ms[n]["ndcg@10"] for n in ms] + [m["ndcg@10"] for m in PUBLISHED_MS.values()]
        colors = ["#2a9d8f"] * len(ms) + ["#e9c46a"] * len(PUBLISHED_MS)
        ax2.bar(range(len(labels)), values, color=colors)
        ax2.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax2.set_ylabel("nDCG@10")
        ax2.set_title("MS Recommenders protocol (yellow: published)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], report: Path) -> Path:
    """Write the Markdown report and its plot (``<report>.png``); returns the plot's path."""
    plot = report.with_suffix(".png")
    report.parent.mkdir(parents=True, exist_ok=True)
    draw(result, plot)
    report.write_text(render(result, plot), encoding="utf-8")
    return plot
