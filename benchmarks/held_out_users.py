"""Every family under P5 (held-out users, scored from their history), beside popularity.

    .venv/bin/python -m benchmarks.held_out_users --dataset ml-100k
    .venv/bin/python -m benchmarks.held_out_users --dataset ml-latest-small --families ease,item_knn --warm

Runs the pipeline's own stages without Prefect (ingest, validate, split, train, evaluate; no
serving refit): each family is fitted on the users that are not held out and judged on the
held-out users, each ranked from the first 80% of their interactions. The paired difference
against popularity is over the same held-out users (95% bootstrap). `--warm` also runs P4
(temporal-user) for the warm figure beside it. Writes benchmarks/results/held_out_users_<dataset>.json.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from recsys_models.datasets.spec import Feedback
from recsys_models.registry import default_families, skip_reason
from recsys_models.splitting import SplitSettings
from stages.evaluate import compare_families, evaluate
from stages.ingest import ingest
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from stages.validate import validate

RESULTS = Path(__file__).parent / "results"
BASELINE = "popularity"


def protocol_table(
    validated: Path, root: Path, settings: SplitSettings, families: list[str], seed: int
) -> dict[str, dict[str, Any]]:
    """NDCG@10 with its interval, users, fit seconds and the paired difference against popularity, per family."""
    split_dir = split(validated, root / "split", settings)
    eval_dirs, rows = {}, {}
    for family in [BASELINE] + [name for name in families if name != BASELINE]:
        started = time.perf_counter()
        try:
            train_dir = train(split_dir, root / family / "train", family, seed=seed, items_dir=validated)
            fit_seconds = time.perf_counter() - started
            eval_dirs[family] = evaluate(split_dir, train_dir, root / family / "eval", items_dir=validated)
        except Exception as error:  # a family that cannot run is a row of the table, not the end of it
            rows[family] = {"error": f"{type(error).__name__}: {error}"}
            print(family, rows[family], flush=True)
            continue
        metrics = EvalDir(eval_dirs[family]).metrics()
        row = {key: metrics[key] for key in ("ndcg_at_10", "ndcg_at_10_ci_low", "ndcg_at_10_ci_high", "n_eval_users")}
        row["fit_seconds"] = round(fit_seconds, 1)
        if family != BASELINE:
            paired = compare_families(eval_dirs[family], eval_dirs[BASELINE])
            row |= {"vs_popularity": paired.difference, "vs_popularity_ci": [paired.ci_low, paired.ci_high]}
        rows[family] = row
        print(family, json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--families", help="comma-separated (default: every default family the data allows)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="also run P4 (temporal-user) for the warm figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = Path(os.environ["RECSYS_DATA_DIR"]) if os.environ.get("RECSYS_DATA_DIR") else None
    results: dict[str, Any] = {"dataset": args.dataset, "seed": args.seed, "threads": args.threads}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        validated = validate(
            ingest(args.dataset, root / "ingest", data_dir, root / "downloads", args.seed), root / "validate"
        )
        feedback = Feedback()  # MovieLens semantics; the benchmark's datasets are the MovieLens ones
        has_items = (validated / "items.parquet").exists()
        wanted = args.families.split(",") if args.families else default_families()
        families = [name for name in wanted if skip_reason(name, feedback, has_items) is None]
        protocols = {"held-out-users": SplitSettings(protocol="held-out-users", seed=args.seed, feedback=feedback)}
        if args.warm:
            protocols["temporal-user"] = SplitSettings(protocol="temporal-user", feedback=feedback)
        for name, settings in protocols.items():
            results[name] = protocol_table(validated, root / name, settings, families, args.seed)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"held_out_users_{args.dataset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
