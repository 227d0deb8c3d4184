"""Batch scoring from histories (issue 20): each user of a Parquet of interactions scored from
those rows, not from what the model learned about them, as Parquet part files plus a manifest."""

from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from recsys_models.columns import ITEM_ID, RANK, TIMESTAMP, USER_ID
from recsys_models.inference import COLD_USER, UNKNOWN_ITEMS
from stages.manifest import stage
from stages.score import RECOMMENDATION_COLUMNS, Predict, scoring_parameters, write_parts

HISTORY = "history"
OUTPUT_COLUMNS = (*RECOMMENDATION_COLUMNS, COLD_USER, UNKNOWN_ITEMS)
IGNORED_HISTORIES = (
    ": the model ignored the histories, it was registered before history scoring (its signature "
    "lacks `history`); score with a version registered since"
)


def user_histories(interactions: pl.DataFrame) -> pl.DataFrame:
    """`user_id, history`: each user's item ids ordered by (timestamp, item id), or in file order
    without a timestamp column."""
    missing = {USER_ID, ITEM_ID} - set(interactions.columns)
    if missing:
        raise ValueError(f"histories need columns user_id and item_id (timestamp optional); missing {sorted(missing)}")
    if TIMESTAMP in interactions.columns:
        interactions = interactions.sort([USER_ID, TIMESTAMP, ITEM_ID], maintain_order=True)
    return interactions.group_by(USER_ID, maintain_order=True).agg(pl.col(ITEM_ID).alias(HISTORY))


def write_history_recommendations(
    predict: Predict,
    interactions: pl.DataFrame,
    k: int,
    out_dir: Path,
    batch_size: int = 5_000,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Call `predict` (a pyfunc's) on batches of users with their histories (`user_histories`);
    write `part-NNNNN.parquet` files with `user_id, item_id, score, rank, cold_user, unknown_items`
    and a manifest whose counts add the history rows and the items the model did not know."""
    histories = user_histories(interactions)
    requests = pd.DataFrame({USER_ID: histories[USER_ID].to_list(), HISTORY: histories[HISTORY].to_list()})
    with stage("score", out_dir, scoring_parameters(k, batch_size, parameters)) as record:
        rows = write_parts(predict, requests, k, record, batch_size, OUTPUT_COLUMNS, IGNORED_HISTORIES)
        unknown, cold = per_user_totals([out_dir / name for name in record.outputs])
        record.counts = {
            "users": histories.height,
            "rows": rows,
            "parts": len(record.outputs),
            "history_rows": interactions.height,
            "unknown_items": unknown,
            "cold_users": cold,
        }
    return out_dir


def per_user_totals(parts: list[Path]) -> tuple[int, int]:
    """Items the model did not know, and users answered cold, summed over the written part files."""
    if not parts:
        return 0, 0
    firsts = pl.scan_parquet(parts).filter(pl.col(RANK) == 1)  # one row per user
    unknown, cold = firsts.select(pl.col(UNKNOWN_ITEMS).sum(), pl.col(COLD_USER).sum()).collect().row(0)
    return int(unknown), int(cold)
