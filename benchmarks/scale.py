"""The pipeline (ingest to evaluation) on synthetic data of growing size: wall time and peak memory per stage.

    nice .venv/bin/python -m benchmarks.scale --sizes 1000000,10000000 --families bias,biased_mf,als,ease \
        --family-configs '{"biased_mf": {"epochs": 3}}'

Each size runs in its own process (peak memory is a process's high-water mark) on a Parquet file written
by `recsys_models.datasets.synthetic` (users grow with the size, the catalogue stays at `--items`;
EASE models at most its `max_items`, 20k, of a larger catalogue: "EASE on the top items"). The family list is a
parameter: add two_tower or any other family by name. Validation writes its data docs, as the nightly
run does. Each stage records its wall time, the process's peak RSS and the RSS it started from (the
difference is what the stage added; the allocator keeps freed memory, so a peak also carries what
earlier stages left). Writes benchmarks/results/scale.json (one entry per size, merged with what is
there; `--output` names another file, for example for a data-stages-only run with `--families bias`) and
prints how each stage's time grows from one size to the next.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from stages.layout import EvalDir

RESULTS = Path(__file__).parent / "results"
RATINGS_PER_USER = 100  # about ml-25m's mean (25M ratings / 162k users is 155; the median is lower)


def run_size(n_ratings: int, n_items: int, families: list[str], family_configs: dict, seed: int) -> dict:
    """One size, in this process: generate, then ingest, validate, split, train and evaluate each family."""
    import torch

    from benchmarks.memory import measure
    from recsys_models.datasets import SyntheticConfig, generate_synthetic
    from stages.evaluate import evaluate
    from stages.ingest import ingest
    from stages.split import split
    from stages.train import train
    from stages.validate import validate

    torch.set_num_threads(os.cpu_count() or 1)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("RECSYS_SCRATCH")) as scratch:
        root = Path(scratch)
        n_users = max(100, n_ratings // RATINGS_PER_USER)
        with measure() as cost:
            config = SyntheticConfig(n_users=n_users, n_items=n_items, n_ratings=n_ratings, seed=seed)
            generate_synthetic(config).ratings.write_parquet(root / "ratings.parquet")
        rows["generate"] = vars(cost)
        with measure() as cost:
            ingest_dir = ingest(str(root / "ratings.parquet"), root / "ingest", None, root / "downloads", seed)
        rows["ingest"] = vars(cost)
        with measure() as cost:
            validated = validate(ingest_dir, root / "validate")
        rows["validate"] = vars(cost)
        with measure() as cost:
            split_dir = split(validated, root / "split")
        rows["split"] = vars(cost)
        for family in families:
            with measure() as cost:
                train_dir = train(split_dir, root / "train" / family, family, family_configs.get(family), seed)
            rows[f"train {family}"] = vars(cost)
            with measure() as cost:
                eval_dir = evaluate(split_dir, train_dir, root / "evaluate" / family)
            metrics = EvalDir(eval_dir).metrics()
            rows[f"evaluate {family}"] = vars(cost) | {
                key: metrics[key] for key in ("ndcg_at_10", "rmse", "n_eval_users") if key in metrics
            }
    return {"n_ratings": n_ratings, "n_users": n_users, "n_items": n_items, "stages": rows}


def growth(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per stage, the exponent b of time ~ size^b between consecutive sizes (1 = linear)."""
    sizes = sorted(results, key=int)
    out: dict[str, dict[str, float]] = {}
    for small, large in zip(sizes, sizes[1:], strict=False):
        ratio = math.log(int(large) / int(small))
        for stage, row in results[large]["stages"].items():
            before = results[small]["stages"].get(stage)
            if before and before["seconds"] > 0.05:
                exponent = math.log(row["seconds"] / before["seconds"]) / ratio
                out.setdefault(stage, {})[f"{small}->{large}"] = round(exponent, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000,25000000")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--families", default="bias,biased_mf,als,ease")
    parser.add_argument("--family-configs", default="{}", help="JSON: hyperparameters per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="scale.json", help="file in benchmarks/results/ to merge the sizes into")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a single size, in this process
    args = parser.parse_args()
    families, family_configs = args.families.split(","), json.loads(args.family_configs)
    if args.one is not None:
        print(json.dumps(run_size(args.one, args.items, families, family_configs, args.seed)))
        return
    path = RESULTS / args.output
    results = json.loads(path.read_text())["sizes"] if path.exists() else {}
    for size in (int(value) for value in args.sizes.split(",")):
        command = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--one",
            str(size),
            "--items",
            str(args.items),
            "--families",
            args.families,
            "--family-configs",
            args.family_configs,
            "--seed",
            str(args.seed),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            results[str(size)] = {"n_ratings": size, "error": done.stderr[-3000:], "returncode": done.returncode}
        else:
            results[str(size)] = json.loads(done.stdout.strip().splitlines()[-1])
            results[str(size)]["families"] = families
            results[str(size)]["family_configs"] = family_configs
        print(json.dumps({"size": size, "returncode": done.returncode}), flush=True)
        RESULTS.mkdir(exist_ok=True)
        ok = {key: value for key, value in results.items() if "stages" in value}
        payload = {"cores": os.cpu_count(), "sizes": results, "growth_exponent": growth(ok)}
        path.write_text(json.dumps(payload, indent=2))
    for size, entry in sorted(results.items(), key=lambda item: int(item[0])):
        for stage, row in entry.get("stages", {}).items():
            added = row["peak_rss_mb"] - row.get("start_rss_mb", row["peak_rss_mb"])
            print(f"{size:>10} {stage:<22}{row['seconds']:>9.1f} s{row['peak_rss_mb']:>9.0f} MB peak{added:>+8.0f} MB")


if __name__ == "__main__":
    main()
