"""The batched split writer: a scan split a few rows at a time gives exactly the parts (in global
order) and details of the in-memory split, for every protocol and the rolling windows."""

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recsys_models.datasets.spec import ProtocolName
from recsys_models.io import atomic_parquet_writer
from recsys_models.split_writer import (
    PartWriter,
    timestamp_ranges,
    user_ranges,
    write_protocol_split,
    write_rolling_windows,
)
from recsys_models.splitting import (
    PART_NAMES,
    SECONDS_PER_DAY,
    SplitSettings,
    part_names,
    protocol_split,
    rolling_splits,
    with_validation,
)
from stages.split import split as split_stage

SETTINGS = {
    "global-fraction": SplitSettings(protocol="temporal-global", train_fraction=0.7, valid_fraction=0.25),
    # a cutoff of 4 seconds after the epoch: validated from a plain value, which pydantic turns into a datetime
    "global-date": SplitSettings.model_validate({"protocol": "temporal-global", "cutoff": 4, "valid_fraction": 0.25}),
    "user-fraction": SplitSettings(protocol="temporal-user", test_fraction=0.3, min_ratings=2, valid_fraction=0.3),
    "user-count": SplitSettings(protocol="temporal-user", test_count=1, min_ratings=3),
    "leave-one-out": SplitSettings(protocol="leave-one-out"),
    "held-out-users": SplitSettings(protocol="held-out-users", seed=3),
}
ROWS = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 7)),
    min_size=6,
    max_size=60,
    unique_by=lambda row: row[:2],
)


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").with_columns(
        rating=(pl.col("item_id") % 5 + 1).cast(pl.Float64)
    )


def _files_in(folder: Path) -> PartWriter:
    return lambda name, schema: atomic_parquet_writer(folder / f"{name}.parquet", schema)


def _read_parts(folder: Path, names: tuple[str, ...] = PART_NAMES) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(folder / f"{name}.parquet") for name in names}


@pytest.mark.parametrize("name", sorted(SETTINGS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])  # P5 needs 5-row users
@given(rows=ROWS, batch_rows=st.sampled_from([1, 2, 5, 1000]))
def test_batched_split_equals_the_in_memory_split(name: str, rows: list[tuple[int, int, int]], batch_rows: int) -> None:
    frame = _frame(rows).sample(fraction=1.0, shuffle=True, seed=len(rows))
    try:
        expected = protocol_split(frame, SETTINGS[name])
    except ValueError:  # an empty part on this draw
        assume(False)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "ratings.parquet"
        frame.write_parquet(source, row_group_size=7)
        details = write_protocol_split(
            pl.scan_parquet(source), SETTINGS[name], _files_in(Path(folder)), Path(folder), batch_rows
        )
        written = _read_parts(Path(folder), part_names(SETTINGS[name].protocol))
        assert [path.name for path in Path(folder).iterdir() if path.name.startswith(".")] == []  # scratch removed
    assert details == expected.details
    assert set(written) == set(expected.parts)
    for part in written:
        assert written[part].equals(expected.parts[part]), f"{part} differs with batches of {batch_rows}"


@settings(max_examples=30, deadline=None)
@given(rows=ROWS, batch_rows=st.sampled_from([1, 3, 1000]))
def test_batched_rolling_windows_equal_the_in_memory_windows(rows: list[tuple[int, int, int]], batch_rows: int) -> None:
    frame = _frame(rows)
    window_days = 2 / SECONDS_PER_DAY
    try:
        expected = [with_validation(window, 0.5) for window in rolling_splits(frame, 2, window_days)]
    except ValueError:
        assume(False)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "ratings.parquet"
        frame.write_parquet(source)
        written = []

        class WindowFolder:
            def __init__(self, details: dict) -> None:
                self.folder = Path(folder) / str(details["window"])

            def __enter__(self) -> PartWriter:
                self.folder.mkdir()
                return _files_in(self.folder)

            def __exit__(self, *failure: object) -> None:
                written.append(_read_parts(self.folder))

        windows = write_rolling_windows(pl.scan_parquet(source), 2, window_days, 0.5, WindowFolder, batch_rows)
    assert [window["test_rows"] for window in windows] == [split.test.height for split in expected]
    for parts, split in zip(written, expected, strict=True):
        assert windows[split.details["window"]] == split.details | {"test_rows": split.test.height}
        for part in PART_NAMES:
            assert parts[part].equals(split.parts[part])


@given(timestamps=st.lists(st.integers(0, 9), max_size=80).map(sorted), batch_rows=st.integers(1, 12))
def test_timestamp_ranges_cover_every_row_and_never_cut_a_timestamp(timestamps: list[int], batch_rows: int) -> None:
    ranges = timestamp_ranges(np.array(timestamps, dtype=np.int64), batch_rows)
    assert [position for start, end in ranges for position in range(start, end)] == list(range(len(timestamps)))
    for start, end in ranges:
        assert end - start <= batch_rows or len(set(timestamps[start:end])) == 1  # only one timestamp may exceed
        assert end == len(timestamps) or timestamps[end - 1] != timestamps[end]


def test_user_ranges_hold_whole_users_about_a_batch_each() -> None:
    frame = pl.DataFrame({"user_id": [1, 1, 1, 2, 3, 3, 5, 5, 5, 5], "timestamp": list(range(10))})
    assert user_ranges(frame.lazy(), batch_rows=3) == [(1, 1), (2, 3), (5, 5)]
    assert user_ranges(frame.lazy(), batch_rows=100) == [(1, 5)]


def test_split_stage_gives_the_same_files_in_small_batches(tiny_ratings: pl.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "validated").mkdir()
    tiny_ratings.write_parquet(tmp_path / "validated" / "ratings.parquet")
    protocols: tuple[ProtocolName, ...] = ("temporal-global", "temporal-user", "leave-one-out")
    for protocol in protocols:
        options: dict[str, Any] = {"min_ratings": 3} if protocol == "temporal-user" else {}
        settings_ = SplitSettings(protocol=protocol, **options)
        whole = split_stage(tmp_path / "validated", tmp_path / protocol / "whole", settings_)
        batched = split_stage(tmp_path / "validated", tmp_path / protocol / "batched", settings_, batch_rows=2)
        for part in part_names(protocol):
            assert pl.read_parquet(batched / f"{part}.parquet").equals(pl.read_parquet(whole / f"{part}.parquet"))
