"""Batch scoring: top-k recommendations for every known user, as Parquet part files plus a manifest."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from recsys_models.columns import ITEM_ID, RANK, SCORE, USER_ID
from stages.manifest import StageRecord, stage

Predict = Callable[[pd.DataFrame, dict[str, Any]], pd.DataFrame]
RECOMMENDATION_COLUMNS = (USER_ID, ITEM_ID, SCORE, RANK)


def write_recommendations(
    predict: Predict,
    user_ids: np.ndarray,
    k: int,
    out_dir: Path,
    batch_size: int = 5_000,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Call `predict` (a pyfunc's) on batches of users; write `part-NNNNN.parquet` files (one per
    batch: the partitions) with `user_id, item_id, score, rank` and a manifest."""
    with stage("score", out_dir, scoring_parameters(k, batch_size, parameters)) as record:
        rows = write_parts(predict, pd.DataFrame({USER_ID: user_ids}), k, record, batch_size, RECOMMENDATION_COLUMNS)
        record.counts = {"users": int(len(user_ids)), "rows": rows, "parts": len(record.outputs)}
    return out_dir


def scoring_parameters(k: int, batch_size: int, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """The score stage's recorded parameters; a `k` or `batch_size` below 1 is an error."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got {k} and {batch_size}")
    return {"k": k, "batch_size": batch_size} | (parameters or {})


def write_parts(
    predict: Predict,
    requests: pd.DataFrame,
    k: int,
    record: StageRecord,
    batch_size: int,
    columns: Sequence[str],
    missing_hint: str = "",
) -> int:
    """`predict` on `batch_size` rows of `requests` at a time, each answer's `columns` written as the
    part file `part-NNNNN.parquet`; the rows written. An answer without one of `columns` is an error
    (`missing_hint` says why it may be)."""
    rows = 0
    for part, start in enumerate(range(0, len(requests), batch_size)):
        answer = pl.from_pandas(predict(requests.iloc[start : start + batch_size].reset_index(drop=True), {"k": k}))
        missing = [column for column in columns if column not in answer.columns]
        if missing:
            raise ValueError(f"the model's answer lacks {', '.join(missing)}{missing_hint}")
        frame = answer.select(columns)
        record.write_table(f"part-{part:05d}", frame)
        rows += frame.height
    return rows
