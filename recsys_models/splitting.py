"""Deterministic split strategies, exactly as ../shared/PROTOCOLS.md defines them."""

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from recsys_models.columns import ITEM_ID, TIMESTAMP, USER_ID

GLOBAL_ORDER = [TIMESTAMP, USER_ID, ITEM_ID]  # ties in time are frequent in MovieLens
USER_ORDER = [USER_ID, TIMESTAMP, ITEM_ID]  # within a user: (timestamp, item_id)
_POSITION = "_position_in_user"
_USER_LENGTH = "_user_length"


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


def temporal_user_split(ratings: pl.DataFrame, test_fraction: float = 0.2, min_ratings: int = 5) -> Split:
    """P4: each user's last ceil(fraction * m) ratings are test; users with < min_ratings stay in train."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    ranked = _rank_within_users(ratings)
    n_test = (pl.col(_USER_LENGTH) * test_fraction).ceil()
    is_test = (pl.col(_USER_LENGTH) >= min_ratings) & (pl.col(_POSITION) >= pl.col(_USER_LENGTH) - n_test)
    train, test = _partition(ranked, is_test)
    details = {"test_fraction": test_fraction, "min_ratings": min_ratings}
    return Split(protocol="temporal-user", train=train, test=test, details=details)


def leave_one_out_split(ratings: pl.DataFrame, min_interactions: int = 3) -> tuple[Split, pl.DataFrame]:
    """P3: for users with >= min_interactions, the last interaction is test, the one before validation.

    Returns the split (train without the validation rows) and the validation rows; users with
    fewer interactions stay wholly in train.
    """
    if min_interactions < 3:
        raise ValueError(f"leave-one-out needs at least 3 interactions per user, got {min_interactions}")
    ranked = _rank_within_users(ratings)
    eligible = pl.col(_USER_LENGTH) >= min_interactions
    last = pl.col(_USER_LENGTH) - 1
    train, test = _partition(ranked, eligible & (pl.col(_POSITION) == last))
    train_ranked = _rank_within_users(train)
    train, valid = _partition(train_ranked, eligible & (pl.col(_POSITION) == last))
    details = {"min_interactions": min_interactions}
    return Split(protocol="leave-one-out", train=train, test=test, details=details), valid


def _rank_within_users(ratings: pl.DataFrame) -> pl.DataFrame:
    """Rows ordered by (user, timestamp, item) with each row's position in its user and the user's length."""
    return ratings.sort(USER_ORDER).with_columns(
        pl.int_range(pl.len()).over(USER_ID).alias(_POSITION), pl.len().over(USER_ID).alias(_USER_LENGTH)
    )


def _partition(ranked: pl.DataFrame, is_second: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ranked rows by a predicate, dropping the helper columns; each part in global order."""
    flagged = ranked.with_columns(is_second.alias("_second"))
    first = flagged.filter(~pl.col("_second")).drop(_POSITION, _USER_LENGTH, "_second").sort(GLOBAL_ORDER)
    second = flagged.filter(pl.col("_second")).drop(_POSITION, _USER_LENGTH, "_second").sort(GLOBAL_ORDER)
    return first, second


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
