"""Evaluation: the same metric code for every family, on the split's test file; paired comparisons
of two evaluated families; the metric-over-time table of a backtest."""

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.columns import ITEM_ID, USER_ID
from recsys_models.datasets.spec import Feedback
from recsys_models.evaluation import (
    PairedComparison,
    compare_paired,
    evaluate_cold_items,
    evaluate_model,
    item_feature_matrix,
    protocol_evaluation_config,
)
from recsys_models.ids import decode_column
from recsys_models.io import file_sha256
from recsys_models.registry import load_model
from recsys_models.splitting import HELD_OUT_USERS, TEST_HISTORY
from stages.ingest import ID_TABLE
from stages.layout import METRICS, PER_USER, PER_USER_RATING, RECOMMENDATIONS, EvalDir
from stages.manifest import read_manifest, stage
from stages.train import load_item_features, load_training_data

logger = logging.getLogger(__name__)
RATING_PER_USER = ("mse", "mae")  # per-user columns of per_user_rating.parquet
BACKTEST_TABLE = "metrics_over_time"


def evaluate(
    split_dir: Path,
    train_dir: Path,
    out_dir: Path,
    k: int = 10,
    items_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write `metrics.json`, `recommendations.parquet` (raw ids, the scored top-max(cutoffs)),
    `per_user.parquet` (ranking) and `per_user_rating.parquet` (rating errors per user).

    The split's protocol fixes relevance (leave-one-out: every test item; else rating >= 4) and,
    for leave-one-out, the catalogue (every item of the data set); held-out users (P5) are ranked
    from their histories (`test_history.parquet`), given to the model at scoring time. `items_dir/items.parquet`, when
    present, gives the genres for intra-list diversity and, with `tags.parquet` (tags up to the
    last training timestamp), the features of the cold-item slice (`cold_items_*` metrics and
    `per_user_cold_items.parquet`; see `evaluate_cold_items`). `overrides` sets other
    `EvaluationConfig` fields (cut-offs, sampled negatives, slice thresholds, bootstrap).
    """
    split_parameters = read_manifest(split_dir)["parameters"]
    protocol = split_parameters["protocol"]
    feedback = Feedback(**split_parameters.get("feedback", {}))
    config = protocol_evaluation_config(protocol, k, feedback, **(overrides or {}))
    item_files = _item_files(items_dir)
    has_items = bool(item_files)
    parameters = {"protocol": protocol, "item_features": "genres" if has_items else None}
    with stage("evaluate", out_dir, parameters | config.model_dump(mode="json")) as record:
        histories_path = split_dir / f"{TEST_HISTORY}.parquet"
        inputs = [split_dir / "test.parquet", train_dir / "model" / "state.npz"]
        inputs += [histories_path] if protocol == HELD_OUT_USERS else []
        record.record_inputs(inputs + item_files)
        model = load_model(train_dir / "model")
        test = pl.read_parquet(split_dir / "test.parquet")
        features = item_feature_matrix(pl.read_parquet(item_files[0]), model.items) if has_items else None
        catalogue = _catalogue_size(split_dir) if protocol == "leave-one-out" else None
        histories = pl.read_parquet(histories_path) if protocol == HELD_OUT_USERS else None
        evaluation = evaluate_model(model, test, config, features, catalogue, histories)
        catalogue_features = load_item_features(items_dir, *load_training_data(split_dir)) if has_items else None
        cold_items = evaluate_cold_items(model, test, catalogue_features, config)
        metrics = (
            {
                "family": model.family,
                "protocol": protocol,
                "feedback": feedback.kind,
                "exclude_seen": feedback.exclude_seen,
            }
            | evaluation.metrics
            | cold_items.summary
        )
        record.write_table("per_user_cold_items", cold_items.per_user)
        id_texts = _id_table(items_dir)
        recommendations = decode_column(evaluation.recommendations, USER_ID, id_texts, "user")
        record.write_table(RECOMMENDATIONS, decode_column(recommendations, ITEM_ID, id_texts, "item"))
        record.write_table(PER_USER, evaluation.per_user)
        record.write_table(PER_USER_RATING, evaluation.per_user_rating)
        record.write_json(METRICS, metrics)
        record.counts = {"n_eval_users": metrics["n_eval_users"], "n_eval_rows": metrics["n_eval_rows"]}
    return out_dir


def _item_files(items_dir: Path | None) -> list[Path]:
    """The item table of `items_dir` and, when there is one, its tags table; none without an item table."""
    if items_dir is None or not (items_dir / "items.parquet").exists():
        return []
    return [items_dir / "items.parquet"] + [path for path in [items_dir / "tags.parquet"] if path.exists()]


def _id_table(items_dir: Path | None) -> pl.DataFrame | None:
    """The text of the source's coded ids (the validate folder's id table), when it has any."""
    path = items_dir / f"{ID_TABLE}.parquet" if items_dir is not None else None
    return pl.read_parquet(path) if path is not None and path.exists() else None


def compare_families(eval_dir_a: Path, eval_dir_b: Path, metric: str = "ndcg_at_10", seed: int = 0) -> PairedComparison:
    """Paired comparison (a - b) of two evaluated families on the users both were scored on.

    Ranking metrics read `per_user.parquet`; `mse` and `mae` read `per_user_rating.parquet`.
    """
    rating = metric in RATING_PER_USER
    return compare_paired(EvalDir(eval_dir_a).per_user(rating), EvalDir(eval_dir_b).per_user(rating), metric, seed=seed)


def backtest_report(entries: list[dict[str, Any]], out_dir: Path, k: int = 10) -> Path:
    """Write the metric-over-time table of a backtest (Parquet and CSV) and, when matplotlib is
    installed, a PNG of NDCG@k (and RMSE where a family predicts ratings) per window.

    Each entry names `window`, `family`, `split_dir`, and `eval_dir` (None when that family
    failed or the window was empty, with the reason in `status`).
    """
    with stage("backtest-report", out_dir, {"k": k}) as record:
        table = metrics_over_time(entries, k)
        record.write_table(BACKTEST_TABLE, table)
        csv_path = out_dir / f"{BACKTEST_TABLE}.csv"
        _atomic_write_text(csv_path, table.write_csv())
        record.outputs[csv_path.name] = {"rows": table.height, "sha256": file_sha256(csv_path)}
        plot = plot_metrics_over_time(table, out_dir / f"{BACKTEST_TABLE}.png", k)
        if plot is not None:
            record.outputs[plot.name] = {"sha256": file_sha256(plot)}
        record.counts = {"rows": table.height, "plot": plot is not None}
    return out_dir


def metrics_over_time(entries: list[dict[str, Any]], k: int = 10) -> pl.DataFrame:
    """One row per (window, family): cut-off, sizes, evaluated counts, headline metrics and intervals."""
    headline = ["rmse", "mae"] + [
        f"{name}_at_{k}"
        for name in ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "coverage", "gini", "novelty")
    ]
    rows = []
    for entry in entries:
        split = read_manifest(entry["split_dir"])
        metrics = EvalDir(entry["eval_dir"]).metrics() if entry.get("eval_dir") else {}
        row: dict[str, Any] = {
            "window": entry["window"],
            "cutoff": split["parameters"]["cutoff"],
            "window_end": split["parameters"]["window_end"],
            "family": entry["family"],
            "status": entry.get("status", "ok"),
            "train_rows": split["counts"]["train_rows"] + split["counts"]["valid_rows"],
            "test_rows": split["counts"]["test_rows"],
            "n_eval_users": metrics.get("n_eval_users"),
            "n_eval_rows": metrics.get("n_eval_rows"),
        }
        for name in headline:
            for suffix in ("", "_ci_low", "_ci_high"):
                value = metrics.get(name + suffix)
                row[name + suffix] = float(value) if value is not None else None
        rows.append(row)
    schema = {
        "window": pl.Int64,
        "cutoff": pl.String,
        "window_end": pl.String,
        "family": pl.String,
        "status": pl.String,
        "train_rows": pl.Int64,
        "test_rows": pl.Int64,
        "n_eval_users": pl.Int64,
        "n_eval_rows": pl.Int64,
    } | {name + suffix: pl.Float64 for name in headline for suffix in ("", "_ci_low", "_ci_high")}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("window", "family")


def plot_metrics_over_time(table: pl.DataFrame, path: Path, k: int = 10) -> Path | None:
    """NDCG@k (and RMSE when present) per window and family with 95% bands; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: the backtest plot is skipped")
        return None
    panels = [f"ndcg_at_{k}"] + (["rmse"] if table["rmse"].drop_nulls().len() else [])
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    windows = table.unique("window").sort("window")
    for axis, metric in zip(axes[:, 0], panels, strict=True):
        for family in table["family"].unique(maintain_order=True):
            rows = table.filter((pl.col("family") == family) & pl.col(metric).is_not_null())
            if rows.height:
                axis.plot(rows["window"], rows[metric], marker="o", label=family)
                axis.fill_between(rows["window"], rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"], alpha=0.2)
        axis.set_ylabel(metric)
        axis.set_xticks(windows["window"].to_list(), [cutoff[:10] for cutoff in windows["cutoff"]])
        axis.legend()
    axes[-1, 0].set_xlabel("window cut-off (95% intervals over users shaded)")
    figure.tight_layout()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as temp:
        figure.savefig(temp.name, dpi=100)
    plt.close(figure)
    os.replace(temp.name, path)
    return path


def _catalogue_size(split_dir: Path) -> int:
    """Distinct items over train, valid and test: leave-one-out's candidate catalogue."""
    parts = [pl.read_parquet(split_dir / f"{name}.parquet", columns=[ITEM_ID]) for name in ("train", "valid", "test")]
    return pl.concat(parts)[ITEM_ID].n_unique()


def _atomic_write_text(path: Path, text: str) -> None:
    """Write text beside `path`, then rename it into place (a killed run leaves no half file)."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as temp:
        temp.write(text)
    os.chmod(temp.name, 0o644)
    os.replace(temp.name, path)
