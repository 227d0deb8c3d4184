"""Evaluation: the same metric code for every family, on the split's test file."""

from pathlib import Path

import polars as pl

from recsys_models.evaluation import evaluate_ranking, evaluate_rating
from recsys_models.registry import load_model
from stages.manifest import read_manifest, stage


def evaluate(split_dir: Path, train_dir: Path, out_dir: Path, k: int = 10) -> Path:
    """Write `metrics.json`, `recommendations.parquet` (raw ids, the scored top-k) and `per_user.parquet`."""
    protocol = read_manifest(split_dir)["parameters"]["protocol"]
    with stage("evaluate", out_dir, {"k": k, "protocol": protocol}) as record:
        record.record_inputs([split_dir / "test.parquet", train_dir / "model" / "state.npz"])
        model = load_model(train_dir / "model")
        test = pl.read_parquet(split_dir / "test.parquet")
        ranking = evaluate_ranking(model, test, k=k)
        metrics = {"family": model.family, "protocol": protocol} | evaluate_rating(model, test) | ranking.summary
        record.write_table("recommendations", ranking.recommendations)
        record.write_table("per_user", ranking.per_user)
        record.write_json("metrics", metrics)
        record.counts = {"n_eval_users": metrics["n_eval_users"], "n_eval_rows": metrics["n_eval_rows"]}
    return out_dir
