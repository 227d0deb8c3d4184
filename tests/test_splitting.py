"""The global temporal split of PROTOCOLS.md P1/P2: order, cut-off, cold counts."""

import polars as pl
import pytest
import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recsys_models.splitting import cold_start_counts, temporal_global_split


def test_split_orders_ties_by_user_then_item(tiny_ratings: pl.DataFrame) -> None:
    split = temporal_global_split(tiny_ratings, 0.8)
    assert split.train.height == 11  # floor(0.8 * 14)
    assert split.test.height == 3
    # timestamp 3 has four rows; the tie order decides which ones are train
    assert split.train.filter(pl.col("timestamp") == 3).select("user_id", "item_id").rows() == [
        (1, 30), (2, 40), (3, 50), (4, 40)
    ]
    assert split.test.select("user_id", "item_id").rows() == [(1, 40), (2, 50), (3, 20)]
    assert split.details["cutoff_timestamp"] == 10


def test_cold_counts(tiny_ratings: pl.DataFrame) -> None:
    train = tiny_ratings.filter(pl.col("user_id") != 4, pl.col("item_id") != 50)
    test = pl.DataFrame({"user_id": [1, 4, 4], "item_id": [50, 10, 50], "rating": [1.0] * 3, "timestamp": [20] * 3})
    counts = cold_start_counts(train, test)
    assert counts == {
        "test_rows": 3, "test_users": 2, "cold_rows": 3, "cold_user_rows": 2,
        "cold_item_rows": 2, "cold_users": 1, "cold_items": 1,
    }


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_split_rejects_fractions_outside_the_unit_interval(tiny_ratings: pl.DataFrame, fraction: float) -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        temporal_global_split(tiny_ratings, fraction)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 5)), min_size=3, max_size=60, unique=True
    ),
    fraction=st.floats(0.3, 0.9),
)
def test_split_loses_nothing_and_never_leaks(rows: list[tuple[int, int, int]], fraction: float) -> None:
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").with_columns(
        rating=pl.lit(3.0)
    )
    assume(0 < math.floor(fraction * frame.height) < frame.height)
    split = temporal_global_split(frame, fraction)
    combined = pl.concat([split.train, split.test])
    assert combined.sort(pl.all()).equals(frame.select(combined.columns).sort(pl.all()))
    assert split.train["timestamp"].max() <= split.test["timestamp"].min()
    shuffled = temporal_global_split(frame.sample(fraction=1.0, shuffle=True, seed=1), fraction)
    assert shuffled.train.equals(split.train) and shuffled.test.equals(split.test)
