"""How repeated (user, item) rows combine (a dataset spec's `repeats` rule), written once.

`sum`, `max` and `count` combine the weights (ratings) of the rows and date the pair at its first
row; `first` and `last` keep the earliest or latest row whole (ties in time: the later row in
the table). With `per_time=True` only rows of the same (user, item, timestamp) combine, which is
how repeat consumption keeps its separate events for the split.
"""

from typing import Literal

import polars as pl

from recsys_models.columns import ITEM_ID, RATING, TIMESTAMP, USER_ID

RepeatRule = Literal["sum", "max", "count", "first", "last"]
_COMBINED = {
    "sum": pl.col(RATING).sum(),
    "max": pl.col(RATING).max(),
    "count": pl.len().cast(pl.Float64),
}


def combine_repeats(frame: pl.LazyFrame, rule: RepeatRule, per_time: bool = False) -> pl.LazyFrame:
    """One row per (user, item) (or per (user, item, timestamp)) with the columns user_id,
    item_id, rating, timestamp, sorted by user, item and time."""
    key = [USER_ID, ITEM_ID, TIMESTAMP] if per_time else [USER_ID, ITEM_ID]
    rows = frame.select(USER_ID, ITEM_ID, RATING, TIMESTAMP).with_row_index("__order__")
    if rule in _COMBINED:
        combined = rows.group_by(key).agg(_COMBINED[rule].alias(RATING), pl.col(TIMESTAMP).min().alias("__first__"))
        combined = combined.with_columns(pl.col("__first__").alias(TIMESTAMP)).drop("__first__")
    else:
        ordered = rows.sort([*key, TIMESTAMP, "__order__"] if not per_time else [*key, "__order__"])
        kept = [column for column in (RATING, TIMESTAMP) if column not in key]
        picked = [pl.col(c).first() if rule == "first" else pl.col(c).last() for c in kept]
        combined = ordered.group_by(key, maintain_order=True).agg(picked)
    return combined.select(USER_ID, ITEM_ID, RATING, TIMESTAMP).sort(USER_ID, ITEM_ID, TIMESTAMP)
