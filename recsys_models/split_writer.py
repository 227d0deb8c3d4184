"""Writing a protocol split of a ratings table that need not fit in memory, a batch of rows at a time.

The rules are those of `recsys_models.splitting`; this module applies them to a lazy scan and writes
each part, in global order (timestamp, user_id, item_id), through a writer it is given:

- **Global protocols** (P1/P2, rolling windows) cut the global order at row positions. The positions
  come from the sorted timestamp column alone (`splitting.global_cut`, `splitting.rolling_windows`);
  the rows are then read one timestamp range of about `batch_rows` rows at a time, sorted, and sent
  to train, valid or test by their position.
- **Per-user protocols** (P4, P3, P5) split each user by that user's rows alone, so the in-memory
  rule (`splitting.protocol_split`) runs on one range of whole users (about `batch_rows` rows) at a
  time, into scratch files; each part is then rewritten in global order, one timestamp range at a
  time. P5's held-out users are drawn once, from every user's row count, before the first range.

What is held: one batch, the sorted timestamps (8 bytes a row) and the row count of each user. A
single timestamp or user with more than `batch_rows` rows makes a larger batch.
"""

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_models.columns import TIMESTAMP, USER_ID
from recsys_models.io import atomic_parquet_writer
from recsys_models.splitting import (
    GLOBAL_ORDER,
    HELD_OUT_USERS,
    PART_NAMES,
    SplitSettings,
    global_cut,
    held_out_user_ids,
    part_names,
    protocol_split,
    rolling_windows,
)

BATCH_ROWS = 2_000_000
Append = Callable[[pl.DataFrame], None]
PartWriter = Callable[[str, pl.Schema], AbstractContextManager[Append]]
"""Opens the part `name` (train, valid, test or P5's test_history) of a schema for appending; it
appears when the block ends."""


@dataclass(frozen=True)
class GlobalCuts:
    """Row positions in global order: train [0, valid_start), valid [valid_start, test_start),
    test [test_start, test_end); rows from test_end on belong to no part."""

    valid_start: int
    test_start: int
    test_end: int

    def part_ranges(self) -> dict[str, tuple[int, int]]:
        return {
            "train": (0, self.valid_start),
            "valid": (self.valid_start, self.test_start),
            "test": (self.test_start, self.test_end),
        }


def sorted_timestamps(ratings: pl.LazyFrame) -> np.ndarray:
    """The timestamp column in ascending order: the global order's positions, read on the streaming engine."""
    return ratings.select(pl.col(TIMESTAMP).sort()).collect(engine="streaming")[TIMESTAMP].to_numpy()


def write_protocol_split(
    ratings: pl.LazyFrame, settings: SplitSettings, open_part: PartWriter, scratch: Path, batch_rows: int = BATCH_ROWS
) -> dict[str, Any]:
    """Write train, valid and test of `settings` through `open_part`; return the split's details
    (as `protocol_split(...).details`). Scratch files of per-user protocols go to a temporary folder in `scratch`."""
    timestamps = sorted_timestamps(ratings)
    if settings.protocol == "temporal-global":
        test_start, details = global_cut(timestamps, settings.train_fraction, settings.cutoff)
        cuts = _with_validation_cut(timestamps, test_start, len(timestamps), settings.valid_fraction)
        write_global_cuts(ratings, timestamps, cuts, open_part, batch_rows)
        return details | {"valid_fraction": settings.valid_fraction}
    return _write_per_user_split(ratings, settings, timestamps, open_part, scratch, batch_rows)


def write_rolling_windows(
    ratings: pl.LazyFrame,
    n_windows: int,
    window_days: float,
    valid_fraction: float,
    open_window: Callable[[dict[str, Any]], AbstractContextManager[PartWriter]],
    batch_rows: int = BATCH_ROWS,
) -> list[dict[str, Any]]:
    """Write each backtest window's parts through the writer `open_window(details)` yields for it (the
    last `valid_fraction` of its train is the validation tail); return the windows' details with
    their test row counts."""
    timestamps = sorted_timestamps(ratings)
    windows = []
    for train_rows, test_end, window in rolling_windows(timestamps, n_windows, window_days):
        cuts = _with_validation_cut(timestamps, train_rows, test_end, valid_fraction)
        details = window | {"valid_fraction": valid_fraction}
        with open_window(details) as open_part:
            write_global_cuts(ratings, timestamps, cuts, open_part, batch_rows)
        windows.append(details | {"test_rows": test_end - train_rows})
    return windows


def write_global_cuts(
    ratings: pl.LazyFrame, timestamps: np.ndarray, cuts: GlobalCuts, open_part: PartWriter, batch_rows: int
) -> None:
    """Read the rows one timestamp range at a time, sort each range, and send every row to the part
    its global position falls in."""
    schema = ratings.collect_schema()
    with ExitStack() as parts:
        append = {name: parts.enter_context(open_part(name, schema)) for name in PART_NAMES}
        for start, end in timestamp_ranges(timestamps[: cuts.test_end], batch_rows):
            batch = _rows_between(ratings, timestamps[start], timestamps[end - 1]).sort(GLOBAL_ORDER)
            if batch.height != end - start:
                raise RuntimeError(f"the ratings changed while they were split ({batch.height} != {end - start} rows)")
            for name, (first, stop) in cuts.part_ranges().items():
                first, stop = max(first, start), min(stop, end)
                if stop > first:
                    append[name](batch.slice(first - start, stop - first))


def timestamp_ranges(timestamps: np.ndarray, batch_rows: int) -> list[tuple[int, int]]:
    """Consecutive position ranges [start, end) of sorted timestamps, about `batch_rows` long, that never
    cut through a timestamp (so a range is read back as the rows between its first and last timestamp)."""
    ranges, start = [], 0
    while start < len(timestamps):
        end = min(start + batch_rows, len(timestamps))
        if end < len(timestamps):
            end = int(np.searchsorted(timestamps, timestamps[end], side="left"))
            if end <= start:  # one timestamp holds more than batch_rows rows
                end = int(np.searchsorted(timestamps, timestamps[start], side="right"))
        ranges.append((start, end))
        start = end
    return ranges


def user_ranges(ratings: pl.LazyFrame, batch_rows: int) -> list[tuple[int, int]]:
    """Consecutive (first, last) user id ranges holding about `batch_rows` rows each, whole users."""
    counts = ratings.group_by(USER_ID).len().sort(USER_ID).collect(engine="streaming")
    users, rows = counts[USER_ID].to_numpy(), counts["len"].to_numpy()
    ranges, first, held = [], 0, 0
    for index, count in enumerate(rows):
        held += int(count)
        if held >= batch_rows or index == len(rows) - 1:
            ranges.append((int(users[first]), int(users[index])))
            first, held = index + 1, 0
    return ranges


def _with_validation_cut(timestamps: np.ndarray, train_rows: int, test_end: int, valid_fraction: float) -> GlobalCuts:
    """The validation tail of a global split: the last `valid_fraction` of its train rows (`with_validation`'s rule)."""
    valid_start, _ = global_cut(timestamps[:train_rows], train_fraction=1.0 - valid_fraction)
    return GlobalCuts(valid_start=valid_start, test_start=train_rows, test_end=test_end)


def _write_per_user_split(
    ratings: pl.LazyFrame,
    settings: SplitSettings,
    timestamps: np.ndarray,
    open_part: PartWriter,
    scratch: Path,
    batch_rows: int,
) -> dict[str, Any]:
    """Split one range of users at a time into scratch parts, then write each part in global order."""
    schema = ratings.collect_schema()
    details: dict[str, Any] = {}
    held_out = None
    if settings.protocol == HELD_OUT_USERS:
        held_out = held_out_user_ids(ratings.group_by(USER_ID).len().collect(engine="streaming"), settings.seed or 0)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".split-") as folder:
        unordered = {name: Path(folder) / f"{name}.parquet" for name in part_names(settings.protocol)}
        with ExitStack() as parts:
            append = {
                name: parts.enter_context(atomic_parquet_writer(path, schema)) for name, path in unordered.items()
            }
            for first, last in user_ranges(ratings, batch_rows):
                rows = ratings.filter(pl.col(USER_ID).is_between(first, last)).collect()
                split = protocol_split(rows, settings, held_out)
                for name, frame in split.parts.items():
                    append[name](frame)
                details = split.details
        if held_out is not None:  # each range counted its own
            details |= {"held_out_users": int(held_out.size)}
        ranges = timestamp_ranges(timestamps, batch_rows)
        for name, path in unordered.items():
            with open_part(name, schema) as write:
                for start, end in ranges:
                    write(
                        _rows_between(pl.scan_parquet(path), timestamps[start], timestamps[end - 1]).sort(GLOBAL_ORDER)
                    )
    return details


def _rows_between(ratings: pl.LazyFrame, first: int, last: int) -> pl.DataFrame:
    return ratings.filter(pl.col(TIMESTAMP).is_between(int(first), int(last))).collect()
