"""ANN index quality and speed: recall@100 against exact search, latency, throughput, build time, memory.

    nice .venv/bin/python -m benchmarks.ann_index
    nice .venv/bin/python -m benchmarks.ann_index --catalogues synthetic-100k --kinds hnsw \
        --config '{"hnsw_ef_search": 128}'

Catalogues: `ml-latest-small` (the item and user vectors of a `two_tower` model trained on every
valid rating, 10 epochs, no refit) and clustered synthetic catalogues of 100k and 1M items
(`synthetic-100k`, `synthetic-1m`): "trained-like" unit vectors of dimension 64 around 1,000
random unit centres (Gaussian noise of norm about 1), with queries drawn from the same mixture and
scaled by 1 / 0.05 as the user tower's are. Per index kind (`recsys_models.two_tower.ann`,
default `AnnConfig` unless `--config`): build seconds, serialised index size and the process's
peak resident memory during the build, recall@100 of its top-100 against `IndexFlatIP`'s over
1,000 queries, per-query latency p50/p99 (one query per call, 300 calls) and throughput
(queries/s for the 1,000 queries in one batched call). faiss searches on one thread (`--threads`)
and builds on two (`--build-threads`): the machine is shared. Writes
benchmarks/results/ann_index.json (merged with earlier results per catalogue and kind) and
prints one JSON line per measurement.
"""

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from benchmarks.memory import measure
from benchmarks.protocol_quality import valid_ratings
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.two_tower import AnnConfig, TwoTower, TwoTowerConfig, VectorIndex, recall_at_k

RESULTS = Path(__file__).parent / "results" / "ann_index.json"
CATALOGUES = ("ml-latest-small", "synthetic-100k", "synthetic-1m")
KINDS = ("hnsw", "ivf")
DIMENSION = 64
N_QUERIES = 1000
N_LATENCY_CALLS = 300
K = 100


def clustered_vectors(n: int, rng: np.random.Generator, centres: np.ndarray, noise: float = 1.0) -> np.ndarray:
    """Unit vectors around randomly chosen centres, built in chunks to bound memory."""
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        chunk = centres[rng.integers(centres.shape[0], size=size)]
        chunk += rng.normal(0, noise / np.sqrt(centres.shape[1]), chunk.shape).astype(np.float32)
        out[start : start + size] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def catalogue(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(item vectors, query vectors, description) of a catalogue."""
    if name == "ml-latest-small":
        data = Interactions.from_frame(valid_ratings(name))
        config = TwoTowerConfig(epochs=10, refit_on_full=False, ann=AnnConfig(kind="exact"))
        model = TwoTower(config, TrainingOptions(seed=42, device="cpu")).fit(data)
        queries = model.user_vectors[np.random.default_rng(0).choice(len(model.users), N_QUERIES)]
        return model.item_vectors, queries, "two_tower item/user vectors (ids only, 10 epochs) on ml-latest-small"
    n_items = {"synthetic-100k": 100_000, "synthetic-1m": 1_000_000}[name]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, DIMENSION)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    items = clustered_vectors(n_items, rng, centres)
    queries = clustered_vectors(N_QUERIES, rng, centres) / 0.05
    return items, queries, f"{n_items} clustered unit vectors, 1000 centres, dimension {DIMENSION}"


def measure_kind(
    items: np.ndarray, queries: np.ndarray, exact_ids: np.ndarray, config: AnnConfig, threads: int, build_threads: int
) -> dict:
    faiss.omp_set_num_threads(build_threads)
    with measure() as build:
        index = VectorIndex.build(items, config)
    faiss.omp_set_num_threads(threads)
    batch_started = time.perf_counter()
    ids, _ = index.search(queries, K)
    batch_seconds = time.perf_counter() - batch_started
    latencies = []
    for query in queries[:N_LATENCY_CALLS]:
        started = time.perf_counter()
        index.search(query[None, :], K)
        latencies.append(time.perf_counter() - started)
    return {
        "config": config.model_dump(mode="json"),
        "recall_at_100": round(recall_at_k(ids, exact_ids), 4),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)) * 1000, 3),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)) * 1000, 3),
        "throughput_qps": round(queries.shape[0] / batch_seconds, 1),
        "build_seconds": round(build.seconds, 2),
        "index_mb": round(index.memory_bytes() / 2**20, 1),
        "build_peak_rss_mb": round(build.peak_rss_mb, 1),
    }


def save(name: str, entry: dict) -> None:
    """Merge one catalogue's entry into the results file, keeping what other runs wrote."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = results.get(name, {}) | entry
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogues", default=",".join(CATALOGUES))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--config", default="{}", help="AnnConfig fields as JSON (kind is set per run)")
    parser.add_argument("--threads", type=int, default=1, help="faiss threads while searching")
    parser.add_argument("--build-threads", type=int, default=2, help="faiss threads while building")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    for name in args.catalogues.split(","):
        items, queries, description = catalogue(name)
        exact = VectorIndex.build(items, AnnConfig(kind="exact"))
        started = time.perf_counter()
        exact_ids, _ = exact.search(queries, K)
        exact_qps = queries.shape[0] / (time.perf_counter() - started)
        del exact
        entry = {
            "description": description,
            "n_items": int(items.shape[0]),
            "dimension": int(items.shape[1]),
            "n_queries": int(queries.shape[0]),
            "exact_throughput_qps": round(exact_qps, 1),
            "search_threads": args.threads,
            "build_threads": args.build_threads,
        }
        for kind in args.kinds.split(","):
            config = AnnConfig(**(json.loads(args.config) | {"kind": kind}))
            entry[kind] = measure_kind(items, queries, exact_ids, config, args.threads, args.build_threads)
            print(json.dumps({"catalogue": name, "kind": kind} | entry[kind]), flush=True)
            save(name, entry)


if __name__ == "__main__":
    main()
