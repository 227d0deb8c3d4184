"""Split strategies of PROTOCOLS.md (P1-P4) and the rolling backtest: hand-computed cases, the
validation tail, manifest facts, and Hypothesis properties (nothing lost, no pair in two parts,
deterministic under the tie order, no leakage)."""

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from data_contracts import ContractViolation
from data_contracts.splits import check_split
from recsys_models.datasets.spec import Feedback
from recsys_models.splitting import (
    LEAKAGE_SCOPE,
    SECONDS_PER_DAY,
    Split,
    SplitSettings,
    cold_start_counts,
    leakage_check,
    leave_one_out_split,
    protocol_split,
    rolling_splits,
    split_report,
    temporal_global_split,
    temporal_user_split,
    with_validation,
)
from stages.manifest import StageRecord
from stages.split import _check_and_report, rolling_split
from stages.split import split as split_stage

PAIR = ["user_id", "item_id"]


def pairs(frame: pl.DataFrame | None) -> list[tuple[int, int]]:
    return [] if frame is None else sorted(frame.select(PAIR).rows())


# --- P1/P2: global temporal split --------------------------------------------------------------
def test_split_orders_ties_by_user_then_item(tiny_ratings: pl.DataFrame) -> None:
    split = temporal_global_split(tiny_ratings, 0.8)
    assert split.train.height == 11  # floor(0.8 * 14)
    assert split.test.height == 3
    # timestamp 3 has four rows; the tie order decides which ones are train
    assert split.train.filter(pl.col("timestamp") == 3).select("user_id", "item_id").rows() == [
        (1, 30),
        (2, 40),
        (3, 50),
        (4, 40),
    ]
    assert split.test.select("user_id", "item_id").rows() == [(1, 40), (2, 50), (3, 20)]
    assert split.details["cutoff_timestamp"] == 10


@pytest.mark.parametrize("cutoff", [10, datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC), datetime(1970, 1, 1, 0, 0, 10)])
def test_global_split_by_date_puts_rows_at_or_after_the_cutoff_in_test(
    tiny_ratings: pl.DataFrame, cutoff: int | datetime
) -> None:
    split = temporal_global_split(tiny_ratings, cutoff=cutoff)  # a naive datetime means UTC
    assert split.train.height == 11 and split.train["timestamp"].max() == 3
    assert split.test.select(PAIR).rows() == [(1, 40), (2, 50), (3, 20)]
    assert split.details["cutoff"] == "1970-01-01T00:00:10+00:00"


def test_global_split_by_date_rejects_empty_parts_and_double_rules(tiny_ratings: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="empty"):
        temporal_global_split(tiny_ratings, cutoff=100)
    with pytest.raises(ValueError, match="not both"):
        temporal_global_split(tiny_ratings, 0.5, cutoff=5)


def test_cold_counts(tiny_ratings: pl.DataFrame) -> None:
    train = tiny_ratings.filter(pl.col("user_id") != 4, pl.col("item_id") != 50)
    test = pl.DataFrame({"user_id": [1, 4, 4], "item_id": [50, 10, 50], "rating": [1.0] * 3, "timestamp": [20] * 3})
    counts = cold_start_counts(train, test)
    assert counts == {
        "test_rows": 3,
        "test_users": 2,
        "cold_rows": 3,
        "cold_user_rows": 2,
        "cold_item_rows": 2,
        "cold_users": 1,
        "cold_items": 1,
    }


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_split_rejects_fractions_outside_the_unit_interval(tiny_ratings: pl.DataFrame, fraction: float) -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        temporal_global_split(tiny_ratings, fraction)


# --- P4: per-user temporal holdout --------------------------------------------------------------
def test_user_split_by_fraction_and_by_count(tiny_ratings: pl.DataFrame) -> None:
    # users 1-3 have 4 ratings each, user 4 has 2 and stays in train (fewer than min_ratings)
    by_fraction = temporal_user_split(tiny_ratings, test_fraction=0.2, min_ratings=3)  # ceil(0.8) = 1 each
    assert pairs(by_fraction.test) == [(1, 40), (2, 50), (3, 20)]
    by_count = temporal_user_split(tiny_ratings, test_count=2, min_ratings=3)
    assert pairs(by_count.test) == [(1, 30), (1, 40), (2, 40), (2, 50), (3, 20), (3, 50)]
    assert 4 not in by_count.test["user_id"].to_list()
    # a user needs more ratings than test_count, or keeps them all in train
    assert temporal_user_split(tiny_ratings, test_count=4, min_ratings=3).test.height == 0


def test_user_split_orders_a_users_ties_by_item() -> None:
    frame = pl.DataFrame(
        {"user_id": [9] * 5, "item_id": [7, 3, 5, 1, 2], "rating": [4.0] * 5, "timestamp": [1, 1, 1, 0, 0]}
    )
    assert pairs(temporal_user_split(frame, test_count=2).test) == [(9, 5), (9, 7)]


def test_p4_default_is_the_last_fifth_of_users_with_five_ratings() -> None:
    frame = pl.DataFrame(
        {
            "user_id": [1] * 6 + [2] * 4,
            "item_id": list(range(6)) + list(range(4)),
            "rating": [4.0] * 10,
            "timestamp": list(range(6)) + list(range(4)),
        }
    )
    split = temporal_user_split(frame)
    assert pairs(split.test) == [(1, 4), (1, 5)]  # ceil(0.2 * 6) = 2; user 2 (4 ratings) stays in train


# --- P3: leave-one-out ----------------------------------------------------------------------------
def test_leave_one_out_takes_the_last_as_test_and_the_one_before_as_validation(tiny_ratings: pl.DataFrame) -> None:
    split, valid = leave_one_out_split(tiny_ratings)
    assert pairs(split.test) == [(1, 40), (2, 50), (3, 20)]
    assert pairs(valid) == [(1, 30), (2, 40), (3, 50)]
    assert split.train.height == 14 - 6 and split.valid is None
    via_settings = protocol_split(tiny_ratings, SplitSettings(protocol="leave-one-out"))
    assert pairs(via_settings.valid) == pairs(valid) and via_settings.train.equals(split.train)


# --- validation tails -----------------------------------------------------------------------------
def test_validation_tail_of_a_global_split_is_the_end_of_train(tiny_ratings: pl.DataFrame) -> None:
    split = with_validation(temporal_global_split(tiny_ratings, 0.8), valid_fraction=0.1)
    # floor(0.9 * 11) = 9 train rows; the last two of train in (timestamp, user, item) order are valid
    assert pairs(split.valid) == [(3, 50), (4, 40)]
    assert split.train.height == 9 and split.test.height == 3
    assert split.history.height == 11
    with pytest.raises(ValueError, match="already"):
        with_validation(split)


def test_validation_tail_of_a_user_split_follows_the_same_rule(tiny_ratings: pl.DataFrame) -> None:
    by_count = with_validation(temporal_user_split(tiny_ratings, test_count=1, min_ratings=3))
    assert pairs(by_count.valid) == [(1, 30), (2, 40), (3, 50)]  # each user's last train rating
    assert by_count.details["valid_count"] == 1
    by_fraction = with_validation(temporal_user_split(tiny_ratings, test_fraction=0.2, min_ratings=3), 0.2)
    assert pairs(by_fraction.valid) == [(1, 30), (2, 40), (3, 50)]  # ceil(0.2 * 3) = 1 of 3 train ratings


# --- rolling backtest -----------------------------------------------------------------------------
def test_rolling_windows_train_before_each_cutoff_and_test_the_window_after() -> None:
    day = SECONDS_PER_DAY
    frame = pl.DataFrame(
        {
            "user_id": [1, 2, 1, 2, 3],
            "item_id": [1, 1, 2, 2, 3],
            "rating": [4.0] * 5,
            "timestamp": [0, day, day + 5, 2 * day, 3 * day - 1],
        }
    )
    first, second = rolling_splits(frame, n_windows=2, window_days=1)  # the last window ends at 3 days
    assert first.details["cutoff_timestamp"] == day and first.details["window_end_timestamp"] == 2 * day
    assert pairs(first.train) == [(1, 1)] and pairs(first.test) == [(1, 2), (2, 1)]
    assert pairs(second.train) == [(1, 1), (1, 2), (2, 1)] and pairs(second.test) == [(2, 2), (3, 3)]
    assert first.protocol == second.protocol == "rolling"
    with pytest.raises(ValueError, match="before any rating"):
        rolling_splits(frame, n_windows=3, window_days=1)


def test_rolling_windows_can_end_at_a_given_date_and_be_empty() -> None:
    frame = pl.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [4.0, 4.0], "timestamp": [0, 10]})
    (window,) = rolling_splits(frame, 1, window_days=1, end=datetime(1970, 1, 3, tzinfo=UTC))
    assert window.test.height == 0 and window.train.height == 2
    assert window.details["cutoff"] == "1970-01-02T00:00:00+00:00"


# --- settings, manifest facts, the stage ----------------------------------------------------------
def test_settings_reject_parameters_of_another_protocol() -> None:
    with pytest.raises(ValidationError, match="do not apply"):
        SplitSettings(protocol="temporal-user", train_fraction=0.5)
    with pytest.raises(ValidationError, match="not both"):
        SplitSettings(train_fraction=0.5, cutoff=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="not both"):
        SplitSettings(protocol="temporal-user", test_fraction=0.2, test_count=2)
    with pytest.raises(ValidationError, match="Extra inputs"):
        SplitSettings(protocl="leave-one-out")  # type: ignore[call-arg]  # the misspelt key is the point: it must be refused


def test_leakage_check_counts_test_rows_earlier_than_training() -> None:
    history = pl.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rating": [4.0, 4.0], "timestamp": [5, 9]})
    test = pl.DataFrame({"user_id": [1, 2, 3], "item_id": [2, 2, 2], "rating": [4.0] * 3, "timestamp": [6, 9, 1]})
    assert leakage_check(history, test, "global")["earlier_test_rows"] == 2  # 6 < 9 and 1 < 9; the tie is fine
    per_user = leakage_check(history, test, "user")  # user 3 has no history to be earlier than
    assert per_user["earlier_test_rows"] == 0 and per_user["passed"]


def test_split_report_states_sizes_cold_rows_and_leakage(tiny_ratings: pl.DataFrame) -> None:
    parts = protocol_split(tiny_ratings, SplitSettings(protocol="temporal-user", min_ratings=3))
    report = split_report(parts.parts, parts.protocol)
    assert split_report(parts.parts, parts.protocol, check_split(parts.parts, parts.protocol)) == report
    assert (report["train_rows"], report["valid_rows"], report["test_rows"]) == (8, 3, 3)
    assert report["leakage"]["required"] == "user" and report["leakage"]["user"]["passed"]
    assert report["leakage"]["passed"]
    assert report["leakage"]["global"]["earlier_test_rows"] == 0  # here every test row is also globally last
    assert report["test"]["cold_rows"] == 0 and "cold" in report["cold_rule"]


def test_split_stage_writes_three_disjoint_parts_and_a_manifest(tiny_ratings: pl.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "validated").mkdir()
    tiny_ratings.write_parquet(tmp_path / "validated" / "ratings.parquet")
    out = split_stage(tmp_path / "validated", tmp_path / "split", SplitSettings(protocol="leave-one-out"))
    parts = {name: pl.read_parquet(out / f"{name}.parquet") for name in ("train", "valid", "test")}
    assert sum(frame.height for frame in parts.values()) == tiny_ratings.height
    assert not set(pairs(parts["train"])) & set(pairs(parts["valid"]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["protocol"] == "leave-one-out"
    assert manifest["counts"]["leakage"]["user"]["passed"]
    assert manifest["counts"]["test"]["test_rows"] == 3


def test_split_stage_refuses_a_leaking_split(tiny_ratings: pl.DataFrame, tmp_path: Path) -> None:
    ordered = tiny_ratings.sort("timestamp")
    record = StageRecord("split", tmp_path)
    for name, part in (("train", ordered.slice(4)), ("valid", ordered.slice(2, 2)), ("test", ordered.head(2))):
        record.write_table(name, part)
    with pytest.raises(ContractViolation, match="test rows are earlier than the training data"):
        _check_and_report(record, "temporal-global", {}, Feedback())
    assert not list(tmp_path.glob("*.parquet"))  # nothing is left of a split that leaks


def test_rolling_split_stage_writes_one_folder_per_window(tmp_path: Path) -> None:
    day = SECONDS_PER_DAY
    frame = pl.DataFrame(
        {
            "user_id": [1, 2, 3, 1, 2, 3, 1, 2],
            "item_id": [1, 1, 1, 2, 2, 2, 3, 3],
            "rating": [4.0] * 8,
            "timestamp": [0, 1, 2, 3, day, day + 1, 2 * day, 3 * day - 1],
        }
    )
    (tmp_path / "validated").mkdir()
    frame.write_parquet(tmp_path / "validated" / "ratings.parquet")
    windows = rolling_split(tmp_path / "validated", tmp_path / "split", n_windows=2, window_days=1, valid_fraction=0.5)
    assert [path.name for path in windows] == ["window_00", "window_01"]
    first = json.loads((windows[0] / "manifest.json").read_text())
    assert first["parameters"]["protocol"] == "rolling"
    assert (first["counts"]["train_rows"], first["counts"]["valid_rows"], first["counts"]["test_rows"]) == (2, 2, 2)
    assert first["counts"]["leakage"]["global"]["passed"]
    top = json.loads((tmp_path / "split" / "manifest.json").read_text())
    assert [window["test_rows"] for window in top["counts"]["windows"]] == [2, 2]


# --- properties -----------------------------------------------------------------------------------
STRATEGIES: dict[str, Callable[[pl.DataFrame], list[Split]]] = {
    "global-fraction": lambda f: [with_validation(temporal_global_split(f, 0.7), 0.25)],
    "global-date": lambda f: [with_validation(temporal_global_split(f, cutoff=4), 0.25)],
    "user-fraction": lambda f: [with_validation(temporal_user_split(f, test_fraction=0.3, min_ratings=2), 0.3)],
    "user-count": lambda f: [with_validation(temporal_user_split(f, test_count=1, min_ratings=3))],
    "leave-one-out": lambda f: [protocol_split(f, SplitSettings(protocol="leave-one-out"))],
    "rolling": lambda f: [with_validation(s, 0.5) for s in rolling_splits(f, 2, window_days=2 / SECONDS_PER_DAY)],
}
ROWS = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 7)),
    min_size=6,
    max_size=60,
    unique_by=lambda row: row[:2],  # MovieLens holds one rating per (user, item)
)


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").with_columns(
        rating=(pl.col("item_id") % 5 + 1).cast(pl.Float64)
    )


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=40, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 1000))
def test_splits_lose_nothing_duplicate_nothing_leak_nothing_and_ignore_row_order(
    strategy: str, rows: list[tuple[int, int, int]], seed: int
) -> None:
    frame = _frame(rows)
    try:
        splits = STRATEGIES[strategy](frame)
    except ValueError:  # an empty train, test or validation part on this draw
        assume(False)
    shuffled = STRATEGIES[strategy](frame.sample(fraction=1.0, shuffle=True, seed=seed))
    for split, again in zip(splits, shuffled, strict=True):
        assert split.valid is not None  # every strategy here adds a validation tail
        parts = [split.train, split.valid, split.test]
        if split.protocol == "rolling":  # rows after the window belong to no part of this split
            parts.append(frame.filter(pl.col("timestamp") >= split.details["window_end_timestamp"]))
        combined = pl.concat([part.select(frame.columns) for part in parts])
        assert combined.sort(pl.all()).equals(frame.sort(pl.all())), "a row was lost or duplicated"
        keys = [set(pairs(part)) for part in parts]
        assert sum(map(len, keys)) == len(set().union(*keys)), "a (user, item) pair is in two parts"
        leakage = split_report(split.parts, split.protocol)["leakage"]
        assert leakage[LEAKAGE_SCOPE[split.protocol]]["passed"] and leakage["valid_vs_train"]["passed"]
        assert leakage["passed"]
        for name in ("train", "valid", "test"):
            assert getattr(split, name).equals(getattr(again, name)), f"{name} depends on the input row order"


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
    assert cast(int, split.train["timestamp"].max()) <= cast(int, split.test["timestamp"].min())  # Int64 columns
    shuffled = temporal_global_split(frame.sample(fraction=1.0, shuffle=True, seed=1), fraction)
    assert shuffled.train.equals(split.train) and shuffled.test.equals(split.test)
