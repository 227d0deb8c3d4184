"""Fit time and peak memory of model families on ml-latest-small and on 1M synthetic ratings.

    .venv/bin/python -m benchmarks.fit_speed
    .venv/bin/python -m benchmarks.fit_speed --datasets synthetic-1m --families item_knn --threads 1

Every (dataset, family) pair is fitted in a fresh spawned process with the family's default config,
so one fit's leftovers never count in the next one's memory; the data are loaded there before the
clock starts. Reports fit seconds, the peak resident memory of that process during the fit
(`benchmarks.memory.measure`, data included), the resident memory before the fit and the
machine's one-minute load average when the fit ended. Families that early-stop get no validation
tail here, so they run their full epoch budget: the worst case of a pipeline fit. Writes
benchmarks/results/fit_speed.json and prints one JSON line per fit. The synthetic set has
20,000 users, 10,000 items and 1,000,000 ratings (power-law activity and popularity). Times are
wall-clock: other work on the machine changes them, not the memory figures.
"""

import argparse
import json
import multiprocessing
import os
from pathlib import Path

import torch

from benchmarks.memory import measure
from benchmarks.protocol_quality import valid_ratings
from recsys_models.datasets import SyntheticConfig, generate_synthetic
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class

RESULTS = Path(__file__).parent / "results"
DATASETS = ("ml-latest-small", "synthetic-1m")
DEFAULT_FAMILIES = ("popularity", "bias", "item_knn", "user_knn", "mf", "biased_mf", "bpr_mf", "als", "ease")
SYNTHETIC_1M = SyntheticConfig(n_users=20_000, n_items=10_000, n_ratings=1_000_000, seed=0)


def load_interactions(dataset: str) -> Interactions:
    """Every valid rating of a dataset as one training set."""
    if dataset == "synthetic-1m":
        return Interactions.from_frame(generate_synthetic(SYNTHETIC_1M).ratings)
    return Interactions.from_frame(valid_ratings(dataset))


def fit_once(dataset: str, family: str, threads: int, seed: int) -> dict:
    """Load, then fit one family with its defaults under `measure`; runs in a child process."""
    torch.set_num_threads(threads)
    data = load_interactions(dataset)
    model = family_class(family)(options=TrainingOptions(seed=seed))
    with measure() as before:
        pass
    with measure() as cost:
        model.fit(data)
    return {
        "dataset": dataset,
        "family": family,
        "n_ratings": len(data),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "fit_seconds": round(cost.seconds, 2),
        "peak_rss_mb": round(cost.peak_rss_mb),
        "rss_before_fit_mb": round(before.peak_rss_mb),
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 1),  # other work on the machine inflates the time
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows = []
    for dataset in args.datasets.split(","):
        for family in args.families.split(","):
            with context.Pool(1) as pool:
                try:
                    row = pool.apply(fit_once, (dataset, family, args.threads, args.seed))
                except Exception as error:  # a failing family is reported, not allowed to hide the others
                    row = {"dataset": dataset, "family": family, "error": f"{type(error).__name__}: {error}"}
            print(json.dumps(row), flush=True)
            rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fit_speed.json"
    ran = {(row["dataset"], row["family"]) for row in rows}  # a partial run keeps the other pairs' rows
    previous = json.loads(path.read_text())["fits"] if path.exists() else []
    kept = [row for row in previous if (row["dataset"], row["family"]) not in ran]
    path.write_text(json.dumps({"cpu_count": os.cpu_count(), "fits": kept + rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
