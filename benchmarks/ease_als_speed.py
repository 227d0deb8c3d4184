"""Speed targets of the closed-form and ALS families.

    .venv/bin/python -m benchmarks.ease_als_speed
    .venv/bin/python -m benchmarks.ease_als_speed --skip-ease --repeats 5

1. EASE on 10,000 items (the 1M-rating synthetic set of `benchmarks.fit_speed`): fit time and
   peak resident memory in a fresh spawned process, on `--ease-threads` torch threads (default 1);
   target under 10 s and 2 GB. Then where the time goes: the Gram product, the Cholesky factor
   and the inverse (potri) with B, timed apart with the functions the fit calls.
2. ALS against the `implicit` library (benfred/implicit, CPU) with the same factors, iterations,
   regularisation and confidence (1 + alpha * 1): implicit's conjugate gradient (3 steps, fixed
   in its CPU solver, as our default `cg_steps`) against our `solver="cg"`, and implicit's exact
   solver against our `solver="cholesky"`, on ml-latest-small
   and on the synthetic set; target: ours within 1.5x of implicit's time. Skipped, with a message,
   when `implicit` is not installed (it is not a project dependency: `pip install implicit`).

Both sides run on one thread (torch, implicit's `num_threads`, and BLAS through threadpoolctl);
each time is the best of `--repeats` fits, since other work on the machine only adds time.
Writes benchmarks/results/ease_als_speed.json and prints one JSON line per measurement.
"""

import argparse
import importlib.util
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from benchmarks.fit_speed import load_interactions
from benchmarks.memory import measure
from recsys_models.als import ALS, ALSConfig
from recsys_models.ease import EASE, EASEConfig, _cholesky_in_place, _gram, _weights_from_factor
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"
EASE_TARGET_SECONDS, EASE_TARGET_MB = 10.0, 2048.0
ALS_TARGET_RATIO = 1.5
ALS_DATASETS = ("ml-latest-small", "synthetic-1m")


def ease_fit(dataset: str, threads: int) -> dict:
    """Fit EASE with its defaults under `measure`, then time its phases; runs in a fresh child process."""
    torch.set_num_threads(threads)
    data = load_interactions(dataset)
    model = EASE(options=TrainingOptions(device="cpu"))
    with measure() as before:
        pass
    with measure() as cost:
        model.fit(data)
    return {
        "benchmark": "ease",
        "dataset": dataset,
        "n_items": data.n_items,
        "n_items_with_interactions": int((data.item_counts() > 0).sum()),
        "n_ratings": len(data),
        "fit_seconds": round(cost.seconds, 2),
        "peak_rss_mb": round(cost.peak_rss_mb),
        "rss_before_fit_mb": round(before.peak_rss_mb),
        "meets_target": cost.seconds < EASE_TARGET_SECONDS and cost.peak_rss_mb < EASE_TARGET_MB,
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 1),  # other work on the machine inflates the time
        "phase_seconds": ease_phases(data),
    }


def ease_phases(data: Interactions) -> dict[str, float]:
    """Seconds of the Gram product, the Cholesky factor and the inverse with B, on the CPU."""
    config = EASEConfig()
    matrix = sp.csr_matrix(data.tocsr(values=config.values), dtype=np.float32)
    started = time.perf_counter()
    gram = _gram(matrix, config.gram_block, config.dense_share, "cpu")
    gram_done = time.perf_counter()
    factor = _cholesky_in_place(gram, config.l2)
    factor_done = time.perf_counter()
    _weights_from_factor(factor)
    finished = time.perf_counter()
    return {
        "gram": round(gram_done - started, 2),
        "cholesky": round(factor_done - gram_done, 2),
        "inverse": round(finished - factor_done, 2),
    }


def best_time(fit, repeats: int) -> float:
    """Fastest wall time of `repeats` calls of `fit()`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fit()
        times.append(time.perf_counter() - started)
    return min(times)


def als_against_implicit(dataset: str, config: ALSConfig, repeats: int) -> list[dict]:
    """Our ALS and implicit's, same hyperparameters, both solvers, one thread each.

    implicit's confidence is alpha * value (not 1 + alpha * r): it gets values 1 + alpha and
    alpha 1, so both sides solve the same problem (binary r).
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    data = load_interactions(dataset)
    user_items = data.tocsr(values="binary")
    user_items.data[:] = 1.0 + config.alpha
    rows = []
    with threadpool_limits(limits=1):
        for ours, use_cg in (("cg", True), ("cholesky", False)):
            ours_config = config.model_copy(update={"solver": ours})

            def fit_ours(ours_config: ALSConfig = ours_config) -> None:
                ALS(ours_config, TrainingOptions(device="cpu", seed=0)).fit(data)

            def fit_implicit(use_cg: bool = use_cg) -> None:
                AlternatingLeastSquares(
                    factors=config.n_factors,
                    regularization=config.regularization,
                    alpha=1.0,
                    iterations=config.iterations,
                    use_cg=use_cg,
                    num_threads=1,
                    random_state=0,
                    calculate_training_loss=False,
                ).fit(user_items, show_progress=False)

            ours_seconds, implicit_seconds = best_time(fit_ours, repeats), best_time(fit_implicit, repeats)
            rows.append(
                {
                    "benchmark": "als_vs_implicit",
                    "dataset": dataset,
                    "solver": ours,
                    "n_factors": config.n_factors,
                    "iterations": config.iterations,
                    "ours_seconds": round(ours_seconds, 3),
                    "implicit_seconds": round(implicit_seconds, 3),
                    "ratio": round(ours_seconds / implicit_seconds, 2),
                    "meets_target": ours_seconds <= ALS_TARGET_RATIO * implicit_seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def result_key(row: dict) -> tuple:
    """What a result row measures: benchmark, dataset, (for ALS) solver and (for EASE) threads."""
    return row["benchmark"], row["dataset"], row.get("solver"), row.get("threads", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fits per timing; the best counts")
    parser.add_argument("--ease-threads", type=int, default=1, help="torch threads of the EASE fit")
    parser.add_argument("--skip-ease", action="store_true")
    parser.add_argument("--skip-als", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)
    rows: list[dict] = []
    if not args.skip_ease:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(ease_fit, ("synthetic-1m", args.ease_threads)))
        print(json.dumps(rows[-1]), flush=True)
    if not args.skip_als:
        if importlib.util.find_spec("implicit") is None:
            logger.warning("skipping ALS against implicit: the implicit package is not installed")
        else:
            for dataset in ALS_DATASETS:
                rows += als_against_implicit(dataset, ALSConfig(confidence_from="binary"), args.repeats)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "ease_als_speed.json"
    ran = {result_key(row) for row in rows}  # a partial run (--skip-...) keeps the other measurements
    previous = json.loads(path.read_text())["results"] if path.exists() else []
    kept = [row for row in previous if result_key(row) not in ran]
    path.write_text(json.dumps({"threads": 1, "results": kept + rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
