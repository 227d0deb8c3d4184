"""The ratings contract (`suites/ratings.json`): ids present and positive, ratings on the source's
scale and step, plausible timestamps, no duplicates, every rated item in the item table.

Run-time suite parameters: `rating_min`, `rating_max`, `rating_step` from the source's
`RatingScale`, `timestamp_min` from the source (MovieLens: 1995; a spec: its `earliest_time`,
else the epoch), `timestamp_max` from `now` (Unix seconds), `known_item_ids` from the (validated)
item table, `known_events` from an implicit source's event weights. An expectation whose
parameter is absent is skipped: the unknown-item check without an item table, the event check
without events. Implicit feedback (no scale): the `rating` column holds each row's weight, which
must be positive and finite; there is no step.
"""

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.engine import (
    FAILED_EXPECTATIONS,
    ContractViolation,
    TableContract,
    ValidationOutcome,
    table_problems,
    validate_batches,
    validate_table,
)
from recsys_models import columns
from recsys_models.datasets.types import RatingScale

__all__ = [
    "FAILED_EXPECTATIONS",
    "RATINGS",
    "ContractViolation",
    "ValidationOutcome",
    "validate_ratings",
    "validate_ratings_file",
]

# Names of the row-level expectations in suites/ratings.json, as they appear in reports and
# in `failed_expectations`.
USER_ID_NOT_NULL = "expect_column_values_to_not_be_null(user_id)"
ITEM_ID_NOT_NULL = "expect_column_values_to_not_be_null(item_id)"
RATING_NOT_NULL = "expect_column_values_to_not_be_null(rating)"
TIMESTAMP_NOT_NULL = "expect_column_values_to_not_be_null(timestamp)"
USER_ID_POSITIVE = "expect_column_values_to_be_between(user_id)"
ITEM_ID_POSITIVE = "expect_column_values_to_be_between(item_id)"
RATING_IN_SCALE = "expect_column_values_to_be_between(rating)"
TIMESTAMP_PLAUSIBLE = "expect_column_values_to_be_between(timestamp)"
ITEM_KNOWN = "expect_column_values_to_be_in_set(item_id)"
RATING_ON_STEP = "expect_column_values_to_be_on_scale_step(rating)"
NO_DUPLICATE_ROWS = "expect_rows_to_be_unique()"
ONE_RATING_PER_KEY = "expect_compound_columns_to_be_unique(user_id,item_id,timestamp)"
EVENT_KNOWN = "expect_column_values_to_be_in_set(event)"
EARLIEST_TIMESTAMP = 788_918_400  # 1995-01-01 UTC: MovieLens began in 1997; earlier times are corrupt
SMALLEST_WEIGHT = 1e-12  # implicit weights must be positive: the scale's lower bound is just above 0

RATINGS = TableContract(
    table="ratings",
    suite_file="ratings.json",
    schema=columns.RATINGS_SCHEMA,
    id_columns=(columns.USER_ID, columns.ITEM_ID),
    reasons={
        "expect_table_columns_to_match_schema": "Every later stage reads these columns with these dtypes.",
        "expect_table_row_count_to_be_between": "An empty ratings table means ingestion failed.",
        "expect_column_values_to_not_be_null_everywhere": "Ids missing in every row mean a broken source.",
    },
)
_ITEM_IDS = TableContract(table="items", suite_file="items.json", schema={columns.ITEM_ID: pl.Int64()})


def validate_ratings(
    ratings: pl.DataFrame,
    items: pl.DataFrame | None,
    scale: RatingScale | None,
    now: datetime | None = None,
    timestamp_min: int = EARLIEST_TIMESTAMP,
    known_events: list[str] | None = None,
) -> ValidationOutcome:
    """Check `ratings` against the ratings contract and quarantine the rows that break it.

    Args:
        ratings: table with at least the columns of `columns.RATINGS_SCHEMA`, those dtypes;
            other columns are carried through untouched.
        items: the source's (validated) item table, needs `item_id` Int64; None when the source
            has none, and then the unknown-item expectation is reported as skipped.
        scale: the source's rating scale; bounds and step of valid ratings; None for implicit
            feedback (weights: positive and finite).
        now: timezone-aware upper bound for timestamps; default the current time.
        timestamp_min: earlier timestamps are implausible (Unix seconds).
        known_events: an implicit source's event types (the `event` column); None: no check.

    Raises:
        ContractViolation: a table-level expectation failed (missing column, wrong dtype,
            empty table, ids missing everywhere); the message names each problem.
        TypeError, ValueError: bad arguments (not a DataFrame, naive `now`).
    """
    parameters, report_parameters = _run_time_parameters(items, scale, now, timestamp_min, known_events)
    return validate_table(RATINGS, ratings, parameters, report_parameters)


def validate_ratings_file(
    path: Path,
    items: pl.DataFrame | None,
    scale: RatingScale | None,
    sink: Callable[[pl.DataFrame, pl.DataFrame], None],
    now: datetime | None = None,
    timestamp_min: int = EARLIEST_TIMESTAMP,
    known_events: list[str] | None = None,
) -> dict[str, Any]:
    """`validate_ratings` over a Parquet file, read as a lazy scan `BATCH_ROWS` rows at a time
    (`engine.validate_batches`): each batch's valid and quarantined rows go to `sink`, in input
    order; returns the report. Memory follows the batch size, plus 8 bytes a row for the
    duplicate checks' hashes."""
    parameters, report_parameters = _run_time_parameters(items, scale, now, timestamp_min, known_events)
    return validate_batches(RATINGS, pl.scan_parquet(path), parameters, report_parameters, sink)


def _run_time_parameters(
    items: pl.DataFrame | None,
    scale: RatingScale | None,
    now: datetime | None,
    timestamp_min: int = EARLIEST_TIMESTAMP,
    known_events: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The suite's run-time parameters, and their JSON-able form for the report."""
    if items is not None and not isinstance(items, pl.DataFrame):
        raise TypeError(f"items must be a polars DataFrame or None, got {type(items).__name__}")
    if scale is not None and not isinstance(scale, RatingScale):
        raise TypeError(f"scale must be a RatingScale or None, got {type(scale).__name__}")
    now = checked_now(now)
    if items is not None and (problems := table_problems(_ITEM_IDS, items)):
        raise ContractViolation(problems)
    bounds = (
        (scale.minimum, scale.maximum, scale.step) if scale is not None else (SMALLEST_WEIGHT, sys.float_info.max, None)
    )
    parameters: dict[str, Any] = {
        "rating_min": float(bounds[0]),
        "rating_max": float(bounds[1]),
        "timestamp_min": int(timestamp_min),
        "timestamp_max": int(now.timestamp()),
    }
    if bounds[2] is not None:
        parameters["rating_step"] = float(bounds[2])
    if items is not None:
        parameters["known_item_ids"] = items.get_column(columns.ITEM_ID).drop_nulls().unique()
    if known_events is not None:
        parameters["known_events"] = pl.Series("event", sorted(known_events), dtype=pl.String)
    report_parameters = (
        {key: value for key, value in parameters.items() if key not in ("known_item_ids", "known_events")}
        | {"known_events": sorted(known_events) if known_events is not None else None}
        | {
            "now": now.astimezone(UTC).isoformat(),
            "known_items": len(parameters["known_item_ids"]) if items is not None else None,
        }
    )
    return parameters, report_parameters


def checked_now(now: datetime | None) -> datetime:
    """`now`, or the current UTC time; a naive datetime is an error (timestamps are UTC)."""
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got naive {now.isoformat()}")
    return now
