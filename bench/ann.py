"""ANN benchmark: hnswlib vs faiss-cpu vs usearch for item → similar items, on this machine.

    pip install hnswlib faiss-cpu      # the candidates not in the default install (hnswlib compiles)
    python bench/ann.py --items 100000 --json ann.json
    python bench/ann.py --items 10000 --libs usearch,freshrec

Data: clustered synthetic unit vectors standing in for 384-d all-MiniLM-L6-v2 item embeddings — 500
gaussian cluster centres, each item its centre plus N(0, 0.05²) per component, L2-normalised (neighbours
within a cluster have cosine ≈ 0.5 and differ by noise, so recall is not trivial); queries are fresh draws
from the same mixture. Similarity is inner product (= cosine).

Every library runs in its own process (so resident-memory growth is its own), with comparable parameters:
HNSW M=16, ef_construction=200, inner-product metric, float32 storage. Steps per library:

1. build: incremental adds in batches of 1,000 (all cores; hnswlib's capacity doubled with resize_index as it
   fills, like a growing catalog), resident memory grown by it;
2. queries: 2,000 single queries, k=10, one thread, for each ef_search: p50 / p99 latency and recall@10
   against exact top-10 (NumPy brute force); the smallest ef with recall ≥ 0.99 is the reported setting;
3. churn at that ef: remove 5% of the items, replace the vectors of another 5%, add 5% new (batches of 1,000):
   time per item, then recall@10 against the exact top-10 of the changed set, removed ids ever returned, and
   memory after churn. faiss's HNSW has no removal (``remove_ids`` raises), so its churn is emulated the way
   one would have to: removed ids are filtered by an ``IDSelector`` at query time, replaced vectors are added
   under new internal ids, and memory is only reclaimed by a rebuild;
4. snapshot: serialise to bytes, time and size.

Also: exact search latency — faiss ``IndexFlatIP``, NumPy ``matmul`` (OpenBLAS gemv on every core: stalls
for a scheduler tick, 8–12 ms, whenever another process holds a core) and ``vecdot`` (one thread) at the
full size, and freshrec's ``ExactIndex`` at growing sizes (to choose AutoIndex's exact threshold: the largest
size whose p99 stays ≤ 2 ms) — and, as ``freshrec``, the chosen path end to end through
``freshrec.vectors.open_index`` (string ids mapped to labels, exact → ANN switch at the default threshold).

Timings move ±30% between runs when other processes share the 2 cores; compare libraries within one run.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DIM = 384
CLUSTERS = 500
NOISE = 0.05
M = 16
EF_CONSTRUCTION = 200
BATCH = 1000
K = 10
TARGET_RECALL = 0.99
LIBS = ("hnswlib", "faiss", "usearch", "usearch-f16", "usearch-bf16", "freshrec")
USEARCH_DISTS = ["usearch", "numkong", "tqdm"]
DISTS = {
    "hnswlib": ["hnswlib"],
    "hnswlib-portable": ["hnswlib"],
    "faiss": ["faiss-cpu", "packaging"],
    "usearch": USEARCH_DISTS,
    "usearch-f16": USEARCH_DISTS,
    "usearch-bf16": USEARCH_DISTS,
    "freshrec": USEARCH_DISTS,
}

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]


# ---------------------------------------------------------------- data


def unit(x: F32) -> F32:
    out: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def mixture(rng: np.random.Generator, centres: F32, n: int) -> F32:
    picks = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) * np.float32(NOISE)
    return unit(centres[picks] + noise)


def exact_topk(base: F32, queries: F32, k: int, alive: NDArray[np.bool_] | None = None) -> I64:
    """Row numbers of the exact top-k of each query (NumPy brute force, blocks of queries)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ base.T
        if alive is not None:
            scores[:, ~alive] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def make_data(items: int, queries: int, seed: int, folder: Path) -> dict[str, Any]:
    """Write the vectors and both ground truths to ``folder``; return what the churn does."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((CLUSTERS, DIM), dtype=np.float32))
    share = items // 20  # 5%
    base = mixture(rng, centres, items)
    query = mixture(rng, centres, queries)
    order = rng.permutation(items)
    removed, replaced = np.sort(order[:share]), np.sort(order[share : 2 * share])
    replacement = mixture(rng, centres, share)
    added = mixture(rng, centres, share)
    # the set after churn: rows 0..items-1 (removed ones dead, replaced ones with new vectors), then added
    after = np.concatenate([base, added])
    after[replaced] = replacement
    alive = np.ones(len(after), dtype=bool)
    alive[removed] = False
    t0 = time.perf_counter()
    truth = exact_topk(base, query, K)
    truth_after = exact_topk(after, query, K, alive)
    truth_seconds = time.perf_counter() - t0
    arrays: dict[str, NDArray[Any]] = {
        "base": base,
        "queries": query,
        "removed": removed,
        "replaced": replaced,
        "replacement": replacement,
        "added": added,
        "truth": truth,
        "truth_after": truth_after,
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return {"share": int(share), "ground_truth_seconds": round(truth_seconds, 2)}


# ---------------------------------------------------------------- measuring


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def recall(found: list[list[int]], truth: I64) -> float:
    hits = sum(len(set(f[:K]) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (K * len(truth))


def timed_queries(
    search: Callable[[F32], list[int]], queries: F32
) -> tuple[list[list[int]], dict[str, float]]:
    for q in queries[:50]:  # warm-up
        search(q)
    found: list[list[int]] = []
    took: list[float] = []
    for q in queries:
        t0 = time.perf_counter_ns()
        found.append(search(q))
        took.append((time.perf_counter_ns() - t0) / 1e3)
    return found, {"p50_us": round(pct(took, 0.5), 1), "p99_us": round(pct(took, 0.99), 1)}


def installed_mb(dists: list[str]) -> float:
    total = 0
    for name in dists:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                total += path.stat().st_size
    return round(total / 2**20, 1)


# ---------------------------------------------------------------- adapters
# Each: build(add batches), set_ef, search one -> row numbers, remove rows, replace rows, add rows, dump.
# Internal labels are row numbers of the "after" numbering (0..items-1 base, items.. added).


class Adapter:
    name = ""
    deletes = ""
    replace = ""

    def add(self, rows: I64, vectors: F32) -> None:
        raise NotImplementedError

    def set_ef(self, ef: int) -> None:
        raise NotImplementedError

    def search(self, q: F32) -> list[int]:
        raise NotImplementedError

    def remove(self, rows: I64) -> None:
        raise NotImplementedError

    def replace_vectors(self, rows: I64, vectors: F32) -> None:
        raise NotImplementedError

    def dump(self) -> bytes:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class Hnswlib(Adapter):
    name = "hnswlib"
    deletes = "mark_deleted (filtered at query time; slot reused by add_items(replace_deleted=True))"
    replace = "add_items with an existing label updates the vector and repairs its links in place"

    def __init__(self) -> None:
        import hnswlib  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self.index = hnswlib.Index(space="ip", dim=DIM)
        self.index.init_index(
            max_elements=1024, M=M, ef_construction=EF_CONSTRUCTION, random_seed=1, allow_replace_deleted=True
        )
        self.deleted = 0

    def _grow(self, extra: int) -> None:
        needed = self.index.get_current_count() + extra
        capacity = self.index.get_max_elements()
        if needed > capacity:
            while capacity < needed:
                capacity *= 2
            self.index.resize_index(capacity)

    def add(self, rows: I64, vectors: F32) -> None:
        reuse = min(self.deleted, len(rows))
        self._grow(len(rows) - reuse)
        self.index.add_items(vectors, rows, num_threads=-1, replace_deleted=reuse > 0)
        self.deleted -= reuse

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def search(self, q: F32) -> list[int]:
        labels, _ = self.index.knn_query(q, k=K, num_threads=1)
        return [int(x) for x in labels[0]]

    def remove(self, rows: I64) -> None:
        for row in rows.tolist():
            self.index.mark_deleted(row)
        self.deleted += len(rows)

    def replace_vectors(self, rows: I64, vectors: F32) -> None:
        self.index.add_items(vectors, rows, num_threads=-1)

    def dump(self) -> bytes:
        return pickle.dumps(self.index)

    def version(self) -> str:
        return importlib.metadata.version("hnswlib")


class Faiss(Adapter):
    name = "faiss"
    deletes = (
        "none for HNSW (remove_ids raises): emulated with an IDSelector filter; memory kept until rebuild"
    )
    replace = "none: the new vector is added under a new internal id, the old one filtered like a delete"

    def __init__(self) -> None:
        import faiss  # type: ignore[import-not-found,unused-ignore]

        self.faiss: Any = faiss  # the stubs lack SearchParametersHNSW
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.index = self.faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.row_of: list[int] = []  # faiss internal id -> row
        self.dead: list[int] = []  # internal ids filtered out
        self.internal: dict[int, int] = {}
        self.params: Any = None
        self.ef = 64

    def add(self, rows: I64, vectors: F32) -> None:
        start = self.index.ntotal
        self.index.add(vectors)
        for i, row in enumerate(rows.tolist()):
            self.row_of.append(row)
            self.internal[row] = start + i

    def _make_params(self) -> None:
        self.faiss.omp_set_num_threads(1)
        if self.dead:
            self.selector_batch = self.faiss.IDSelectorBatch(np.array(self.dead, dtype=np.int64))
            self.selector = self.faiss.IDSelectorNot(self.selector_batch)
            self.params = self.faiss.SearchParametersHNSW(sel=self.selector, efSearch=self.ef)
        else:
            self.params = self.faiss.SearchParametersHNSW(efSearch=self.ef)

    def set_ef(self, ef: int) -> None:
        self.ef = ef
        self._make_params()

    def search(self, q: F32) -> list[int]:
        _, ids = self.index.search(q[None, :], K, params=self.params)
        return [self.row_of[i] for i in ids[0].tolist() if i >= 0]

    def remove(self, rows: I64) -> None:
        try:
            self.index.remove_ids(np.array([self.internal[r] for r in rows.tolist()[:1]], dtype=np.int64))
        except RuntimeError as exc:
            self.remove_error = str(exc).strip().splitlines()[-1][:160]
        self.dead.extend(self.internal.pop(r) for r in rows.tolist())
        self._make_params()

    def replace_vectors(self, rows: I64, vectors: F32) -> None:
        self.faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.dead.extend(self.internal.pop(r) for r in rows.tolist())
        self.add(rows, vectors)
        self._make_params()

    def dump(self) -> bytes:
        return bytes(self.faiss.serialize_index(self.index))

    def version(self) -> str:
        return importlib.metadata.version("faiss-cpu")


class Usearch(Adapter):
    name = "usearch"
    deletes = "remove(keys): key dropped at once, its slot reused by later adds"
    replace = "remove + add (add of an existing key raises 'Duplicate keys')"
    dtype = "f32"

    def __init__(self) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=DIM,
            metric="ip",
            dtype=self.dtype,
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=64,
        )

    def add(self, rows: I64, vectors: F32) -> None:
        self.index.add(rows.astype(np.uint64), vectors, threads=0)

    def set_ef(self, ef: int) -> None:
        setattr(self.index, "expansion_search", ef)  # noqa: B010 (mypy reads the property as read-only)

    def search(self, q: F32) -> list[int]:
        matches = self.index.search(q, K, threads=1)
        return [int(x) for x in matches.keys]

    def remove(self, rows: I64) -> None:
        self.index.remove(rows.astype(np.uint64))

    def replace_vectors(self, rows: I64, vectors: F32) -> None:
        self.index.remove(rows.astype(np.uint64))
        self.index.add(rows.astype(np.uint64), vectors, threads=0)

    def dump(self) -> bytes:
        blob = self.index.save()
        assert blob is not None
        return bytes(blob)

    def version(self) -> str:
        return importlib.metadata.version("usearch")


class UsearchF16(Usearch):
    """usearch storing vectors as float16 (half the memory; queries are float32, cast on the way in)."""

    name = "usearch-f16"
    dtype = "f16"


class UsearchBF16(Usearch):
    name = "usearch-bf16"
    dtype = "bf16"


class Freshrec(Adapter):
    """The chosen path end to end: AutoIndex with string ids (switches from exact to ANN at its threshold)."""

    name = "freshrec"
    deletes = "AutoIndex.remove (usearch remove + id map)"
    replace = "AutoIndex.upsert of an existing id (usearch remove + add under a fresh label)"

    def __init__(self) -> None:
        from freshrec.vectors import open_index

        self.index = open_index(DIM)

    def add(self, rows: I64, vectors: F32) -> None:
        self.index.upsert([f"item-{r}" for r in rows.tolist()], vectors)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def search(self, q: F32) -> list[int]:
        return [int(item_id[5:]) for item_id, _ in self.index.search(q, K)]

    def remove(self, rows: I64) -> None:
        self.index.remove([f"item-{r}" for r in rows.tolist()])

    def replace_vectors(self, rows: I64, vectors: F32) -> None:
        self.add(rows, vectors)

    def dump(self) -> bytes:
        return self.index.dump()

    def version(self) -> str:
        return importlib.metadata.version("usearch")


ADAPTERS: dict[str, type[Adapter]] = {
    "hnswlib": Hnswlib,
    "hnswlib-portable": Hnswlib,
    "faiss": Faiss,
    "usearch": Usearch,
    "usearch-f16": UsearchF16,
    "usearch-bf16": UsearchBF16,
    "freshrec": Freshrec,
}


# ---------------------------------------------------------------- workers


def batches(n: int) -> list[slice]:
    return [slice(s, min(n, s + BATCH)) for s in range(0, n, BATCH)]


def run_library(lib: str, folder: Path, efs: list[int]) -> dict[str, Any]:
    data = {p.stem: np.load(p) for p in folder.glob("*.npy")}
    base, queries = data["base"], data["queries"]
    n = len(base)
    gc.collect()
    rss0 = rss_bytes()
    adapter = ADAPTERS[lib]()
    out: dict[str, Any] = {"library": lib, "version": adapter.version(), "deletes": adapter.deletes}
    out["replace"] = adapter.replace
    if lib.startswith("hnswlib"):
        out["module"] = sys.modules["hnswlib"].__file__
    out["installed_mb"] = installed_mb(DISTS[lib])

    t0 = time.perf_counter()
    for part in batches(n):
        adapter.add(np.arange(part.start, part.stop, dtype=np.int64), base[part])
    out["build_s"] = round(time.perf_counter() - t0, 2)
    out["adds_per_s"] = round(n / out["build_s"])
    out["rss_mb"] = round((rss_bytes() - rss0) / 2**20, 1)

    sweep: list[dict[str, Any]] = []
    for ef in efs:
        adapter.set_ef(ef)
        found, lat = timed_queries(adapter.search, queries)
        sweep.append({"ef": ef, "recall": round(recall(found, data["truth"]), 4), **lat})
    out["sweep"] = sweep
    chosen = next((s for s in sweep if s["recall"] >= TARGET_RECALL), sweep[-1])
    out["chosen"] = chosen
    ef = int(chosen["ef"])
    adapter.set_ef(ef)

    removed, replaced = data["removed"], data["replaced"]
    added_rows = np.arange(n, n + len(data["added"]), dtype=np.int64)
    t0 = time.perf_counter()
    for part in batches(len(removed)):
        adapter.remove(removed[part])
    remove_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for part in batches(len(replaced)):
        adapter.replace_vectors(replaced[part], data["replacement"][part])
    replace_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for part in batches(len(added_rows)):
        adapter.add(added_rows[part], data["added"][part])
    add_s = time.perf_counter() - t0
    adapter.set_ef(ef)
    found, lat = timed_queries(adapter.search, queries)
    dead = set(removed.tolist())
    out["churn"] = {
        "remove_us_per_item": round(remove_s / len(removed) * 1e6, 1),
        "replace_us_per_item": round(replace_s / len(replaced) * 1e6, 1),
        "add_us_per_item": round(add_s / len(added_rows) * 1e6, 1),
        "recall": round(recall(found, data["truth_after"]), 4),
        "removed_returned": sum(1 for f in found for r in f if r in dead),
        "rss_mb": round((rss_bytes() - rss0) / 2**20, 1),
        **lat,
    }
    if isinstance(adapter, Faiss) and hasattr(adapter, "remove_error"):
        out["churn"]["remove_ids_error"] = adapter.remove_error

    t0 = time.perf_counter()
    blob = adapter.dump()
    out["dump_s"] = round(time.perf_counter() - t0, 3)
    out["dump_mb"] = round(len(blob) / 2**20, 1)
    return out


def run_exact(folder: Path, sizes: list[int]) -> dict[str, Any]:
    from freshrec.vectors.exact import ExactIndex

    base, queries = np.load(folder / "base.npy"), np.load(folder / "queries.npy")
    out: dict[str, Any] = {"library": "exact"}
    try:
        import faiss  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        faiss.omp_set_num_threads(1)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(base)
        _, lat = timed_queries(lambda q: flat.search(q[None, :], K)[1][0].tolist(), queries[:1000])
        out["faiss_flat_ip_1thread"] = {"items": len(base), **lat}

    def numpy_topk(q: F32) -> list[int]:
        scores = base @ q
        top = np.argpartition(-scores, K)[:K]
        ranked: list[int] = top[np.argsort(-scores[top])].tolist()
        return ranked

    def vecdot_topk(q: F32) -> list[int]:
        scores = np.vecdot(base, q)
        top = np.argpartition(-scores, K)[:K]
        ranked: list[int] = top[np.argsort(-scores[top])].tolist()
        return ranked

    _, lat = timed_queries(numpy_topk, queries[:1000])
    out["numpy_matmul"] = {"items": len(base), **lat}
    _, lat = timed_queries(vecdot_topk, queries[:1000])
    out["numpy_vecdot"] = {"items": len(base), **lat}

    ladder = []
    for size in sizes:
        if size > len(base):
            break
        index = ExactIndex(DIM)
        ids = [f"i{r}" for r in range(size)]
        for part in batches(size):
            index.upsert(ids[part], base[part])
        excl = ids[:20]

        def plain(q: F32, index: ExactIndex = index) -> list[int]:
            return [0 for _ in index.search(q, K)]

        def excluding(q: F32, index: ExactIndex = index, excl: list[str] = excl) -> list[int]:
            return [0 for _ in index.search(q, K, excl)]

        _, lat = timed_queries(plain, queries[:1000])
        _, lat_ex = timed_queries(excluding, queries[:500])
        ladder.append({"items": size, **lat, "p99_us_exclude20": lat_ex["p99_us"]})
    out["exact_index"] = ladder
    return out


def worker_main(args: argparse.Namespace) -> None:
    folder = Path(args.data)
    if args.worker == "exact":
        result = run_exact(folder, [int(s) for s in args.exact_sizes.split(",")])
    else:
        result = run_library(args.worker, folder, [int(e) for e in args.efs.split(",")])
    print("RESULT " + json.dumps(result))


def spawn(worker: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", worker, "--data", str(folder), "--efs", args.efs]
    cmd += ["--exact-sizes", args.exact_sizes]
    env = dict(os.environ)
    if worker == "hnswlib-portable":
        # a build made with HNSWLIB_NO_NATIVE=1 (no -march=native), installed with pip --target DIR
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.hnswlib_portable, env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        return {"library": worker, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


# ---------------------------------------------------------------- report


def print_tables(items: int, results: list[dict[str, Any]]) -> None:
    print(
        f"\n== {items:,} items x {DIM}-d, M={M}, ef_construction={EF_CONSTRUCTION}, k={K}, batches of {BATCH}"
    )
    head = (
        f"{'library':<16} {'version':<8} {'build s':>8} {'adds/s':>7} {'RSS MB':>7} {'ef':>4} {'recall':>7}"
        f" {'p50 us':>7} {'p99 us':>7} {'rm us':>7} {'repl us':>8} {'churn rec':>9} {'leaks':>5}"
        f" {'RSS after':>9} {'dump MB':>7} {'inst MB':>7}"
    )
    print(head)
    for r in results:
        if "sweep" not in r:
            continue
        c, ch = r["chosen"], r["churn"]
        print(
            f"{r['library']:<16} {r['version']:<8} {r['build_s']:>8} {r['adds_per_s']:>7} {r['rss_mb']:>7}"
            f" {c['ef']:>4} {c['recall']:>7} {c['p50_us']:>7} {c['p99_us']:>7} {ch['remove_us_per_item']:>7}"
            f" {ch['replace_us_per_item']:>8} {ch['recall']:>9} {ch['removed_returned']:>5} {ch['rss_mb']:>9}"
            f" {r['dump_mb']:>7} {r['installed_mb']:>7}"
        )
    print("\nef sweep (recall@10 / p50 us / p99 us):")
    for r in results:
        if "sweep" in r:
            cells = "  ".join(
                f"ef{s['ef']}: {s['recall']:.4f}/{s['p50_us']:.0f}/{s['p99_us']:.0f}" for s in r["sweep"]
            )
            print(f"  {r['library']:<16} {cells}")
    for r in results:
        if "error" in r:
            print(f"  {r['library']}: FAILED {r['error']}")
        if r.get("library") == "exact" and "error" not in r:
            m, v = r["numpy_matmul"], r["numpy_vecdot"]
            print(f"\nexact at {m['items']:,}:")
            if "faiss_flat_ip_1thread" in r:
                f = r["faiss_flat_ip_1thread"]
                print(f"  faiss IndexFlatIP (1 thread)   p50 {f['p50_us']} us p99 {f['p99_us']} us")
            print(f"  NumPy matmul (BLAS, all cores) p50 {m['p50_us']} us p99 {m['p99_us']} us")
            print(f"  NumPy vecdot (1 thread)        p50 {v['p50_us']} us p99 {v['p99_us']} us")
            print("freshrec ExactIndex (k=10): items -> p50 / p99 us (p99 with 20 excludes)")
            for row in r["exact_index"]:
                print(
                    f"  {row['items']:>7,}  {row['p50_us']:>8} {row['p99_us']:>8} ({row['p99_us_exclude20']})"
                )
        if "churn" in r and "remove_ids_error" in r["churn"]:
            print(f"\n{r['library']} remove_ids: {r['churn']['remove_ids_error']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--efs", default="32,64,96,128,192,256")
    parser.add_argument("--exact-sizes", default="1000,5000,10000,20000,30000,50000,100000")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-search latencies")
    parser.add_argument(
        "--hnswlib-portable",
        metavar="DIR",
        help="also run 'hnswlib-portable': hnswlib built without -march=native, from "
        "HNSWLIB_NO_NATIVE=1 pip install --no-binary :all: --target DIR hnswlib",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ann-bench-") as tmp:
        folder = Path(tmp)
        meta = make_data(args.items, args.queries, args.seed, folder)
        results = []
        libs = [lib for lib in args.libs.split(",") if lib]
        if args.hnswlib_portable and "hnswlib-portable" not in libs:
            libs.insert(1, "hnswlib-portable")
        for lib in libs:
            print(f"running {lib} ...", file=sys.stderr, flush=True)
            results.append(spawn(lib, folder, args))
        if not args.no_exact:
            print("running exact ...", file=sys.stderr, flush=True)
            results.append(spawn("exact", folder, args))
    report = {
        "items": args.items,
        "dim": DIM,
        "queries": args.queries,
        "clusters": CLUSTERS,
        "noise": NOISE,
        "M": M,
        "ef_construction": EF_CONSTRUCTION,
        "k": K,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **meta,
        "results": results,
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    print_tables(args.items, results)
    print(f"\ntotal {report['total_s']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
