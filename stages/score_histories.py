"""Batch scoring from histories (issue 20): each user of a Parquet of interactions scored from
those rows, not from what the model learned about them, as Parquet part files plus a manifest."""

from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from recsys_models.columns import ITEM_ID, RANK, SCORE, TIMESTAMP, USER_ID
from recsys_models.inference import COLD_USER, UNKNOWN_ITEMS
from stages.manifest import stage
from stages.score import Predict

HISTORY = "history"
OUTPUT_COLUMNS = (USER_ID, ITEM_ID, SCORE, RANK, COLD_USER, UNKNOWN_ITEMS)


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
    predict: Predict, interactions: pl.DataFrame, k: int, out_dir: Path, batch_size: int = 5_000,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Call `predict` (a pyfunc's) on batches of users with their histories (`user_histories`);
    write `part-NNNNN.parquet` files with `user_id, item_id, score, rank, cold_user, unknown_items`
    and a manifest whose counts add the history rows and the items the model did not know."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got {k} and {batch_size}")
    histories = user_histories(interactions)
    with stage("score", out_dir, {"k": k, "batch_size": batch_size} | (parameters or {})) as record:
        rows = unknown = cold = 0
        for part, start in enumerate(range(0, histories.height, batch_size)):
            batch = histories.slice(start, batch_size)
            request = pd.DataFrame({USER_ID: batch[USER_ID].to_list(), HISTORY: batch[HISTORY].to_list()})
            answer = pl.from_pandas(predict(request, {"k": k}))
            if UNKNOWN_ITEMS not in answer.columns:
                raise ValueError("the model ignored the histories: it was registered before history scoring "
                                 "(its signature lacks `history`); score with a version registered since")  # fmt: skip
            frame = answer.select(OUTPUT_COLUMNS)
            record.write_table(f"part-{part:05d}", frame)
            rows += frame.height
            per_user = frame.filter(pl.col(RANK) == 1)
            unknown += int(per_user[UNKNOWN_ITEMS].sum())
            cold += int(per_user[COLD_USER].sum())
        record.counts = {
            "users": histories.height,
            "rows": rows,
            "parts": len(record.outputs),
            "history_rows": interactions.height,
            "unknown_items": unknown,
            "cold_users": cold,
        }
    return out_dir
