"""Deterministic split strategies, exactly as ../shared/PROTOCOLS.md defines them."""

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from recsys_models.columns import ITEM_ID, TIMESTAMP, USER_ID

GLOBAL_ORDER = [TIMESTAMP, USER_ID, ITEM_ID]  # ties in time are frequent in MovieLens


@dataclass(frozen=True)
class Split:
    """Train and test rows of one protocol, plus the facts a manifest reports."""

    protocol: str
    train: pl.DataFrame
    test: pl.DataFrame
    details: dict[str, Any]


def temporal_global_split(ratings: pl.DataFrame, train_fraction: float = 0.8) -> Split:
    """P1/P2: order by (timestamp, user_id, item_id); the first floor(fraction * n) rows are train."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    ordered = ratings.sort(GLOBAL_ORDER)
    n_train = math.floor(train_fraction * ordered.height)
    if n_train == 0 or n_train == ordered.height:
        raise ValueError(f"a {train_fraction:.2f} split of {ordered.height} rows leaves train or test empty")
    train, test = ordered.head(n_train), ordered.slice(n_train)
    details = {
        "train_fraction": train_fraction,
        "cutoff_timestamp": int(test[TIMESTAMP][0]),
        "last_train_timestamp": int(train[TIMESTAMP][-1]),
    }
    return Split(protocol="temporal-global", train=train, test=test, details=details)


def cold_start_counts(train: pl.DataFrame, test: pl.DataFrame) -> dict[str, int]:
    """Test rows, users and items absent from train: counted so they are never silently dropped.

    Rule: cold rows stay in the test file. Rating metrics skip them (and report how many);
    ranking metrics keep their relevant items in the denominator, since no model can reach them.
    """
    train_users = train.select(USER_ID).unique()
    train_items = train.select(ITEM_ID).unique()
    cold_user = ~test[USER_ID].is_in(train_users[USER_ID].implode())
    cold_item = ~test[ITEM_ID].is_in(train_items[ITEM_ID].implode())
    return {
        "test_rows": test.height,
        "test_users": test[USER_ID].n_unique(),
        "cold_rows": int((cold_user | cold_item).sum()),
        "cold_user_rows": int(cold_user.sum()),
        "cold_item_rows": int(cold_item.sum()),
        "cold_users": test.filter(cold_user)[USER_ID].n_unique(),
        "cold_items": test.filter(cold_item)[ITEM_ID].n_unique(),
    }
