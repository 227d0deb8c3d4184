"""Speed targets of the closed-form and ALS families.

    .venv/bin/python -m benchmarks.ease_als_speed
    .venv/bin/python -m benchmarks.ease_als_speed --skip-ease --repeats 5

1. EASE on 10,000 items (the 1M-rating synthetic set of `benchmarks.fit_speed`): fit time and
   peak resident memory in a fresh spawned process; target under 10 s and 2 GB.
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
import time
from pathlib import Path

import torch

from benchmarks.fit_speed import load_interactions
from benchmarks.memory import measure
from recsys_models.als import ALS, ALSConfig
from recsys_models.ease import EASE
from recsys_models.options import TrainingOptions

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"
EASE_TARGET_SECONDS, EASE_TARGET_MB = 10.0, 2048.0
ALS_TARGET_RATIO = 1.5
ALS_DATASETS = ("ml-latest-small", "synthetic-1m")


def ease_fit(dataset: str) -> dict:
    """Fit EASE with its defaults under `measure`; runs in a fresh child process."""
    torch.set_num_threads(1)
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

            def fit_ours() -> None:
                ALS(ours_config, TrainingOptions(device="cpu", seed=0)).fit(data)

            def fit_implicit() -> None:
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
    """What a result row measures: benchmark, dataset and (for ALS) solver."""
    return row["benchmark"], row["dataset"], row.get("solver")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fits per timing; the best counts")
    parser.add_argument("--skip-ease", action="store_true")
    parser.add_argument("--skip-als", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)
    rows: list[dict] = []
    if not args.skip_ease:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(ease_fit, ("synthetic-1m",)))
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
