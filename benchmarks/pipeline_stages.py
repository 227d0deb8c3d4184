"""Stage-by-stage wall time, peak memory and headline metrics of the pipeline, without Prefect.

    .venv/bin/python -m benchmarks.pipeline_stages --dataset ml-latest-small --threads 2
    .venv/bin/python -m benchmarks.pipeline_stages --dataset synthetic --families popularity,biased_mf

Writes benchmarks/results/pipeline_<dataset>.json and prints a table. Run it on a quiet machine:
other work on the 2 cores changes the times, not the metrics.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.memory import measure
from recsys_models.registry import FAMILIES
from stages.evaluate import evaluate
from stages.ingest import ingest
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from stages.validate import validate

RESULTS = Path(__file__).parent / "results"


def run(dataset: str, families: list[str], data_dir: Path | None, seed: int) -> dict:
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with measure() as ingest_cost:
            ingest_dir = ingest(dataset, root / "ingest", data_dir, root / "downloads", seed)
        with measure() as validate_cost:
            validated = validate(ingest_dir, root / "validate")
        with measure() as split_cost:
            split_dir = split(validated, root / "split")
        rows["ingest"], rows["validate"], rows["split"] = (vars(ingest_cost), vars(validate_cost), vars(split_cost))
        for family in families:
            with measure() as fit_cost:
                train_dir = train(split_dir, root / "train" / family, family, seed=seed)
            with measure() as eval_cost:
                eval_dir = evaluate(split_dir, train_dir, root / "evaluate" / family)
            metrics = EvalDir(eval_dir).metrics()
            rows[f"train {family}"] = vars(fit_cost)
            rows[f"evaluate {family}"] = vars(eval_cost) | {
                key: metrics[key]
                for key in ("rmse", "ndcg_at_10", "ndcg_at_10_stderr", "n_eval_users", "n_eval_rows")
                if key in metrics
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = Path(os.environ["RECSYS_DATA_DIR"]) if os.environ.get("RECSYS_DATA_DIR") else None
    rows = run(args.dataset, args.families.split(","), data_dir, args.seed)
    RESULTS.mkdir(exist_ok=True)
    name = Path(args.dataset).stem if os.sep in args.dataset else args.dataset
    (RESULTS / f"pipeline_{name}.json").write_text(json.dumps({"threads": args.threads, "stages": rows}, indent=2))
    print(f"{'stage':<24}{'seconds':>9}{'peak MB':>9}  metrics")
    for stage, row in rows.items():
        extra = {k: round(v, 4) for k, v in row.items() if k not in ("seconds", "peak_rss_mb")}
        print(f"{stage:<24}{row['seconds']:>9.2f}{row['peak_rss_mb']:>9.0f}  {extra or ''}")


if __name__ == "__main__":
    main()
