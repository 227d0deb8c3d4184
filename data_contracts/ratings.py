"""The ratings data contract: table-level checks that stop the run, row-level checks that quarantine.

1. Table level, in Polars: every column of `columns.RATINGS_SCHEMA` present with its dtype,
   at least one row (and, when an item table is given, an `item_id` Int64 column and at
   least one item). Any failure raises `ContractViolation` naming each problem.
2. Row level, from `suites/ratings.json`: Great Expectations 1.x validates the ratings as a
   pandas frame (GX has no Polars data source) with result format COMPLETE, which returns
   the row index of every offending row. Two run in Polars (`meta.polars_expectations`):
   the scale-step check, which GX has no built-in for, and the unknown-item check, which
   GX runs far too slowly with a large value set. Offending rows go to `quarantine` with
   the names of the expectations they broke; the other rows stay in `valid`, in input order.

Run-time suite parameters: `rating_min`, `rating_max`, `rating_step` from the source's
`RatingScale`, `timestamp_max` from `now` (Unix seconds), `known_item_ids` from the item
table (the unknown-item expectation is skipped when there is none).
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from data_contracts.suite import (
    GX_ENGINE,
    POLARS_ENGINE,
    RowExpectation,
    SuiteSpec,
    build_gx_suite,
    import_great_expectations,
    load_suite,
)
from recsys_models import columns
from recsys_models.datasets.types import RatingScale
from recsys_models.exceptions import RecsysError

logger = logging.getLogger(__name__)

SUITE_FILE = "ratings.json"
FAILED_EXPECTATIONS = "failed_expectations"
TABLE_POLICY = "fail"

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

# Table-level expectations, checked in Polars before anything else.
TABLE_HAS_SCHEMA = "expect_table_columns_to_match_schema(ratings)"
TABLE_NOT_EMPTY = "expect_table_row_count_to_be_between(ratings)"
ITEMS_HAVE_ID = "expect_table_columns_to_match_schema(items)"
ITEMS_NOT_EMPTY = "expect_table_row_count_to_be_between(items)"
_TABLE_REASONS = {
    TABLE_HAS_SCHEMA: "Every later stage reads these columns with these dtypes (columns.RATINGS_SCHEMA).",
    TABLE_NOT_EMPTY: "An empty ratings table means ingestion failed; training on it is meaningless.",
    ITEMS_HAVE_ID: "The unknown-item check joins on items.item_id (Int64).",
    ITEMS_NOT_EMPTY: "An empty item table would quarantine every rating; it means ingestion failed.",
}

_ROW_INDEX = "__contract_row__"  # name of the pandas index GX reports offending rows by
_STEP_TOLERANCE = 1e-6  # in units of the scale step
_GX_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [_ROW_INDEX],
    # With the row index as the frame's named index and the values excluded, GX returns the
    # offending positions as one list; otherwise it builds a dict per row through `df.at`
    # (about 25 s per million offending rows).
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
}


class ContractViolation(RecsysError):
    """A table breaks a table-level expectation; the run must stop.

    `problems` holds one sentence per failed expectation, e.g.
    "ratings: column 'rating' is missing (found: userId, movieId)".
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ValidationOutcome:
    """Result of `validate_ratings`.

    `valid`: the rows that met every row-level expectation, input schema and order.
    `quarantine`: the other rows, input columns plus `failed_expectations` (list of the
    expectation names each row broke, in suite order), in input order.
    `report`: JSON-serialisable summary, per expectation and in totals.
    Every input row is in exactly one of `valid` and `quarantine`.
    """

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    report: dict[str, Any]


def _describe(frame: pl.DataFrame) -> str:
    return ", ".join(frame.columns) or "no columns"


def _table_problems(table: str, frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> list[str]:
    problems = []
    for column, dtype in schema.items():
        if column not in frame.schema:
            problems.append(f"{table}: column {column!r} is missing (found: {_describe(frame)})")
        elif frame.schema[column] != dtype:
            problems.append(f"{table}: column {column!r} has dtype {frame.schema[column]}, expected {dtype}")
    if frame.height == 0:
        problems.append(f"{table}: table is empty")
    return problems


def _check_tables(ratings: pl.DataFrame, items: pl.DataFrame | None) -> list[dict[str, Any]]:
    """Raise `ContractViolation` on any table-level problem; return their report entries."""
    problems = _table_problems("ratings", ratings, columns.RATINGS_SCHEMA)
    checked = [TABLE_HAS_SCHEMA, TABLE_NOT_EMPTY]
    if items is not None:
        problems += _table_problems("items", items, {columns.ITEM_ID: columns.ITEMS_SCHEMA[columns.ITEM_ID]})
        checked += [ITEMS_HAVE_ID, ITEMS_NOT_EMPTY]
    if problems:
        raise ContractViolation(problems)
    return [
        {
            "name": name,
            "expectation_type": name.split("(")[0],
            "column": None,
            "engine": POLARS_ENGINE,
            "reason": _TABLE_REASONS[name],
            "policy": TABLE_POLICY,
            "unexpected_count": 0,
            "success": True,
            "skipped": False,
        }
        for name in checked
    ]


def _off_step(column: str, minimum: float, step: float) -> pl.Expr:
    """True where the value is not `minimum + k * step` for an integer k; null stays null
    (missing values are the not-null expectation's business; NaN counts as missing, as in pandas)."""
    steps = (pl.col(column).fill_nan(None) - minimum) / step
    return (steps - steps.round()).abs() > _STEP_TOLERANCE


def _not_in_set(column: str, value_set: pl.Series) -> pl.Expr:
    """True where the value is not in `value_set`; null stays null (as in GX's in-set check)."""
    return ~pl.col(column).is_in(value_set.implode())


_POLARS_CHECKS = {
    "expect_column_values_to_be_on_scale_step": _off_step,
    "expect_column_values_to_be_in_set": _not_in_set,
}


def _run_polars(frame: pl.DataFrame, expectation: RowExpectation, parameters: dict[str, Any]) -> np.ndarray:
    check = _POLARS_CHECKS.get(expectation.type)
    if check is None:
        raise ValueError(f"no Polars implementation for expectation {expectation.type!r}")
    unexpected = check(**expectation.resolved_kwargs(parameters)).fill_null(False)
    return frame.select(pl.arg_where(unexpected)).to_series().to_numpy().astype(np.int64)


def _to_pandas_with_row_index(frame: pl.DataFrame) -> Any:
    """The frame as pandas, its RangeIndex named `_ROW_INDEX` (row positions, 0-based)."""
    converted = frame.to_pandas()
    converted.index.name = _ROW_INDEX
    return converted


def _unexpected_rows(index_list: list[Any] | None) -> np.ndarray:
    """Row positions from a COMPLETE result's `unexpected_index_list`, in either of GX's shapes:
    `[{_ROW_INDEX: [i, j, ...]}]` (values excluded) or `[{_ROW_INDEX: i, column: value}, ...]`."""
    if not index_list:
        return np.empty(0, dtype=np.int64)
    if len(index_list) == 1 and isinstance(index_list[0][_ROW_INDEX], list):
        return np.asarray(index_list[0][_ROW_INDEX], dtype=np.int64)
    return np.fromiter((row[_ROW_INDEX] for row in index_list), dtype=np.int64, count=len(index_list))


def _run_great_expectations(
    frame: pl.DataFrame, suite_name: str, expectations: tuple[RowExpectation, ...], parameters: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Validate `frame` with GX; return the row positions each expectation flagged."""
    gx = import_great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    gx_suite = build_gx_suite(suite_name, expectations)
    # In-memory stores, no data-docs site (the default ephemeral config reserves a temporary
    # folder for one), no progress bars, no analytics.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas(name=suite_name)
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe(name="whole_table")
        .get_batch(batch_parameters={"dataframe": _to_pandas_with_row_index(frame)})
    )
    gx_expectations = [e for e in expectations if e.engine == GX_ENGINE]
    needed = {name: parameters[name] for e in gx_expectations for name in e.parameters}
    result = batch.validate(gx_suite, result_format=_GX_RESULT_FORMAT, expectation_parameters=needed)

    flagged: dict[str, np.ndarray] = {}
    for outcome in result.results:
        name = f"{outcome.expectation_config.type}({outcome.expectation_config.kwargs['column']})"
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"Great Expectations could not evaluate {name}: {outcome.exception_info.get('exception_message')}")
        rows = _unexpected_rows(outcome.result.get("unexpected_index_list"))
        if len(rows) != (outcome.result.get("unexpected_count") or 0):
            raise RuntimeError(f"Great Expectations returned {len(rows)} row indices for {name} but counted {outcome.result.get('unexpected_count')}")
        flagged[name] = rows
    missing = {e.name for e in gx_expectations} - set(flagged)
    if missing:
        raise RuntimeError(f"Great Expectations returned no result for {', '.join(sorted(missing))}")
    return flagged


def _assemble(ratings: pl.DataFrame, flagged: dict[str, np.ndarray], order: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split `ratings` into valid rows and quarantined rows with their failed expectations."""
    empty = pl.DataFrame(schema={_ROW_INDEX: pl.Int64, "_rank": pl.Int64, FAILED_EXPECTATIONS: pl.String})
    pairs = pl.concat(
        [
            pl.DataFrame({_ROW_INDEX: rows}, schema={_ROW_INDEX: pl.Int64}).with_columns(
                pl.lit(rank, dtype=pl.Int64).alias("_rank"), pl.lit(name, dtype=pl.String).alias(FAILED_EXPECTATIONS)
            )
            for rank, name in enumerate(order)
            if len(rows := flagged[name])
        ]
        or [empty]
    )
    failures = (
        pairs.sort(_ROW_INDEX, "_rank")
        .group_by(_ROW_INDEX, maintain_order=True)
        .agg(pl.col(FAILED_EXPECTATIONS))
    )
    indexed = ratings.with_row_index(_ROW_INDEX).with_columns(pl.col(_ROW_INDEX).cast(pl.Int64))
    valid = indexed.join(failures, on=_ROW_INDEX, how="anti", maintain_order="left").drop(_ROW_INDEX)
    quarantine = indexed.join(failures, on=_ROW_INDEX, how="inner", maintain_order="right").drop(_ROW_INDEX)
    return valid, quarantine


def validate_ratings(
    ratings: pl.DataFrame,
    items: pl.DataFrame | None,
    scale: RatingScale,
    now: datetime | None = None,
) -> ValidationOutcome:
    """Check `ratings` against the ratings contract and quarantine the rows that break it.

    Args:
        ratings: table with at least the columns of `columns.RATINGS_SCHEMA`, those dtypes;
            other columns are carried through untouched.
        items: the source's item table (needs `item_id` Int64), or None when the source has
            none; then the unknown-item expectation is reported as skipped.
        scale: the source's rating scale; bounds and step of valid ratings.
        now: timezone-aware upper bound for timestamps; default the current time.

    Raises:
        ContractViolation: a table-level expectation failed (missing column, wrong dtype,
            empty table); the message names each problem.
        TypeError, ValueError: bad arguments (not a DataFrame, naive `now`).
    """
    if not isinstance(ratings, pl.DataFrame):
        raise TypeError(f"ratings must be a polars DataFrame, got {type(ratings).__name__}")
    if items is not None and not isinstance(items, pl.DataFrame):
        raise TypeError(f"items must be a polars DataFrame or None, got {type(items).__name__}")
    if not isinstance(scale, RatingScale):
        raise TypeError(f"scale must be a RatingScale, got {type(scale).__name__}")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got naive {now.isoformat()}")

    started = time.perf_counter()
    table_entries = _check_tables(ratings, items)
    suite: SuiteSpec = load_suite(SUITE_FILE)

    parameters: dict[str, Any] = {
        "rating_min": float(scale.minimum),
        "rating_max": float(scale.maximum),
        "rating_step": float(scale.step),
        "timestamp_max": int(now.timestamp()),
    }
    if items is not None:
        parameters["known_item_ids"] = items.get_column(columns.ITEM_ID).drop_nulls().unique()
    runnable = tuple(e for e in suite.expectations if e.parameters <= parameters.keys())
    skipped = {e.name for e in suite.expectations} - {e.name for e in runnable}

    checked = ratings.select(list(columns.RATINGS_SCHEMA))
    flagged: dict[str, np.ndarray] = {}
    if any(e.engine == GX_ENGINE for e in runnable):
        flagged |= _run_great_expectations(checked, suite.name, runnable, parameters)
    for expectation in runnable:
        if expectation.engine == POLARS_ENGINE:
            flagged[expectation.name] = _run_polars(checked, expectation, parameters)

    order = [e.name for e in runnable]
    valid, quarantine = _assemble(ratings, flagged, order)
    if valid.height + quarantine.height != ratings.height:  # an internal invariant, not input validation
        raise RuntimeError(f"contract split lost rows: {valid.height} valid + {quarantine.height} quarantined != {ratings.height}")

    row_entries = [
        {
            "name": e.name,
            "expectation_type": e.type,
            "column": e.column,
            "engine": e.engine,
            "reason": e.reason,
            "policy": e.policy,
            "unexpected_count": int(len(flagged.get(e.name, ()))),
            "success": None if e.name in skipped else len(flagged[e.name]) == 0,
            "skipped": e.name in skipped,
        }
        for e in suite.expectations
    ]
    report = {
        "suite": suite.name,
        "success": quarantine.height == 0,
        "input_rows": ratings.height,
        "valid_rows": valid.height,
        "quarantined_rows": quarantine.height,
        "parameters": {
            "rating_min": parameters["rating_min"],
            "rating_max": parameters["rating_max"],
            "rating_step": parameters["rating_step"],
            "timestamp_max": parameters["timestamp_max"],
            "now": now.astimezone(UTC).isoformat(),
            "known_items": len(parameters["known_item_ids"]) if items is not None else None,
        },
        "expectations": table_entries + row_entries,
        "seconds": round(time.perf_counter() - started, 3),
    }
    logger.info(
        "ratings contract: %d rows, %d valid, %d quarantined in %.2f s",
        report["input_rows"],
        report["valid_rows"],
        report["quarantined_rows"],
        report["seconds"],
    )
    return ValidationOutcome(valid=valid, quarantine=quarantine, report=report)
