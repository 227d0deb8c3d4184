"""Batch scoring: top-k recommendations for every known user, as Parquet part files plus a manifest."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from stages.manifest import stage

Predict = Callable[[pd.DataFrame, dict[str, Any]], pd.DataFrame]


def write_recommendations(
    predict: Predict, user_ids: np.ndarray, k: int, out_dir: Path, batch_size: int = 5_000,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Call `predict` (a pyfunc's) on batches of users; write `part-NNNNN.parquet` files (one per
    batch: the partitions) with `user_id, item_id, score, rank` and a manifest."""
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got {k} and {batch_size}")
    with stage("score", out_dir, {"k": k, "batch_size": batch_size} | (parameters or {})) as record:
        rows = 0
        for part, start in enumerate(range(0, len(user_ids), batch_size)):
            batch = pd.DataFrame({"user_id": user_ids[start : start + batch_size]})
            frame = pl.from_pandas(predict(batch, {"k": k})).select("user_id", "item_id", "score", "rank")
            record.write_table(f"part-{part:05d}", frame)
            rows += frame.height
        record.counts = {"users": int(len(user_ids)), "rows": rows, "parts": len(record.outputs)}
    return out_dir
