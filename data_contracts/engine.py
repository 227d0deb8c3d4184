"""Runs a suite file against one table: table-level checks that stop the run, row-level checks
that quarantine.

1. Table level, in Polars: required columns with their dtypes, at least one row, id columns not
   null everywhere. Any failure raises `ContractViolation` naming each problem.
2. Row level, from `suites/<table>.json`: the table is checked `BATCH_ROWS` rows at a time. Great
   Expectations 1.x validates each batch as a pandas frame (GX has no Polars data source) with
   result format COMPLETE, which returns the row index of every offending row. Expectations under `meta.polars_expectations` run in Polars, where
   GX has no built-in (scale step, duplicates, text and list checks) or is too slow (large value
   sets). Offending rows go to `quarantine` with the names of the expectations they broke; the
   other rows stay in `valid`, in input order.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from data_contracts.suite import (
    GX_ENGINE,
    POLARS_ENGINE,
    RowExpectation,
    build_gx_suite,
    import_great_expectations,
    load_suite,
)
from recsys_models.exceptions import RecsysError

logger = logging.getLogger(__name__)

FAILED_EXPECTATIONS = "failed_expectations"
TABLE_POLICY = "fail"
SCHEMA_CHECK = "expect_table_columns_to_match_schema"
ROW_COUNT_CHECK = "expect_table_row_count_to_be_between"
IDS_PRESENT_CHECK = "expect_column_values_to_not_be_null_everywhere"

_ROW_INDEX = "__contract_row__"  # name of the pandas index GX reports offending rows by
_STEP_TOLERANCE = 1e-6  # in units of the scale step
# Rows checked at a time: bounds the pandas copy GX works on, and the memory of a scanned table
BATCH_ROWS = 2_000_000
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
    """A table breaks a table-level expectation (or too many rows break row-level ones); the run stops.

    `problems` holds one sentence per failed expectation, e.g.
    "ratings: column 'rating' is missing (found: userId, movieId)".
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ValidationOutcome:
    """Result of validating one table.

    `valid`: the rows that met every row-level expectation, input schema and order.
    `quarantine`: the other rows, input columns plus `failed_expectations` (list of the
    expectation names each row broke, in suite order), in input order.
    `report`: JSON-serialisable summary, per expectation and in totals.
    Every input row is in exactly one of `valid` and `quarantine`.
    """

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    report: dict[str, Any]


@dataclass(frozen=True)
class TableContract:
    """What a table must look like before its rows are checked."""

    table: str
    suite_file: str
    schema: dict[str, pl.DataType]
    id_columns: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)

    def check_name(self, check: str) -> str:
        return f"{check}({self.table})"


def table_problems(contract: TableContract, frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Sentences naming each table-level problem: missing or mistyped columns, no rows, ids all missing.

    A LazyFrame (a scan) is read for its schema and one aggregate, never whole."""
    table, problems, schema = contract.table, [], frame.lazy().collect_schema()
    for column, dtype in contract.schema.items():
        if column not in schema:
            problems.append(f"{table}: column {column!r} is missing (found: {', '.join(schema) or 'no columns'})")
        elif schema[column] != dtype:
            problems.append(f"{table}: column {column!r} has dtype {schema[column]}, expected {dtype}")
    present_ids = [column for column in contract.id_columns if column in schema]
    totals = frame.lazy().select(pl.len().alias(_ROW_INDEX), *(pl.col(c).null_count() for c in present_ids)).collect()
    height = totals[_ROW_INDEX].item()
    if height == 0:
        problems.append(f"{table}: table is empty")
    for column in present_ids:
        if height and totals[column].item() == height:
            problems.append(f"{table}: column {column!r} is missing in every row")
    return problems


def _table_entries(contract: TableContract) -> list[dict[str, Any]]:
    checks = [SCHEMA_CHECK, ROW_COUNT_CHECK] + ([IDS_PRESENT_CHECK] if contract.id_columns else [])
    return [
        {
            "name": contract.check_name(check),
            "expectation_type": check,
            "column": None,
            "engine": POLARS_ENGINE,
            "reason": contract.reasons.get(check, "Later stages cannot read the table otherwise."),
            "policy": TABLE_POLICY,
            "unexpected_count": 0,
            "success": True,
            "skipped": False,
        }
        for check in checks
    ]


# --- row-level checks in Polars ---------------------------------------------------------------
def _off_step(column: str, minimum: float, step: float) -> pl.Expr:
    """Not `minimum + k * step` for an integer k; null stays null (NaN counts as missing, as in pandas)."""
    steps = (pl.col(column).fill_nan(None) - minimum) / step
    return (steps - steps.round()).abs() > _STEP_TOLERANCE


def _not_in_set(column: str, value_set: pl.Series) -> pl.Expr:
    """Not in `value_set`; null stays null (as in GX's in-set check)."""
    return ~pl.col(column).is_in(value_set.implode())


def _later_copies(frame: pl.LazyFrame, key: list[str]) -> np.ndarray:
    """Positions of later copies of the same `key` values; the first in input order stays valid.

    Rows are hashed first and only the rows whose hash repeats are compared exactly, so a hash
    collision is no false duplicate. On 10M ratings: 0.7 GB and 1.9 s, against 1.8 GB and 1.9 s
    for comparing every row's struct.
    """
    return (
        frame.select(key)
        .with_row_index(_ROW_INDEX)
        .filter(pl.struct(key).hash().is_duplicated())
        .filter(~pl.struct(key).is_first_distinct())
        .select(pl.col(_ROW_INDEX).cast(pl.Int64))
        .collect()
        .to_series()
        .to_numpy()
    )


def _repeated_key(frame: pl.LazyFrame, column_list: list[str]) -> np.ndarray:
    """A later occurrence of the same key: the first occurrence in input order stays valid."""
    return _later_copies(frame, column_list)


def _repeated_row(frame: pl.LazyFrame) -> np.ndarray:
    """A later copy of an identical row (every column equal); the first copy stays valid."""
    return _later_copies(frame, frame.collect_schema().names())


def _repeated_value(column: str) -> pl.Expr:
    """A later occurrence of the same non-null value; the first stays valid."""
    return pl.col(column).is_not_null() & ~pl.col(column).is_first_distinct()


def _malformed_text(column: str) -> pl.Expr:
    """Empty after trimming, or holding a control character or U+FFFD (bytes that were not text)."""
    text = pl.col(column)
    return (text.str.strip_chars() == "") | text.str.contains(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


def _malformed_list(column: str) -> pl.Expr:
    """A null list, or a list holding an empty, padded or malformed entry."""
    entries = pl.col(column).list.eval(
        (pl.element().str.strip_chars() != pl.element())
        | (pl.element() == "")
        | pl.element().str.contains(r"[|\x00-\x1f\ufffd]")
        | pl.element().is_null()
    )
    return pl.col(column).is_null() | entries.list.any()


_POLARS_CHECKS: dict[str, Callable[..., pl.Expr]] = {  # an expression, True where a row breaks the expectation
    "expect_column_values_to_be_on_scale_step": _off_step,
    "expect_column_values_to_be_in_set": _not_in_set,
    "expect_column_values_to_be_unique": _repeated_value,
    "expect_column_values_to_be_well_formed_text": _malformed_text,
    "expect_column_values_to_be_well_formed_lists": _malformed_list,
}
_WHOLE_TABLE_CHECKS: dict[
    str, Callable[..., np.ndarray]
] = {  # the whole table (lazily) in, the positions of the offending rows out
    "expect_compound_columns_to_be_unique": _repeated_key,
    "expect_rows_to_be_unique": _repeated_row,
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


def ephemeral_context() -> Any:
    """A GX context with in-memory stores, no data-docs site, no progress bars, no analytics."""
    gx = import_great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_great_expectations(
    frame: pl.DataFrame, suite_name: str, expectations: tuple[RowExpectation, ...], parameters: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Validate `frame` (one batch) with GX; return the row positions each expectation flagged."""
    gx_expectations = [e for e in expectations if e.engine == GX_ENGINE]
    gx_suite = build_gx_suite(suite_name, expectations)
    batch = (
        ephemeral_context()
        .data_sources.add_pandas(name=suite_name)
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe(name="whole_table")
        .get_batch(batch_parameters={"dataframe": _to_pandas_with_row_index(frame)})
    )
    needed = {name: parameters[name] for e in gx_expectations for name in e.parameters}
    flagged = _flagged_rows(batch.validate(gx_suite, result_format=_GX_RESULT_FORMAT, expectation_parameters=needed))
    if missing := {e.name for e in gx_expectations} - flagged.keys():
        raise RuntimeError(f"Great Expectations returned no result for {', '.join(sorted(missing))}")
    return flagged


def _flagged_rows(result: Any) -> dict[str, np.ndarray]:
    """The row positions of one GX validation result, per expectation; raises on GX's own errors."""
    flagged: dict[str, np.ndarray] = {}
    for outcome in result.results:
        name = f"{outcome.expectation_config.type}({outcome.expectation_config.kwargs['column']})"
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            message = outcome.exception_info.get("exception_message")
            raise RuntimeError(f"Great Expectations could not evaluate {name}: {message}")
        rows = _unexpected_rows(outcome.result.get("unexpected_index_list"))
        if len(rows) != (outcome.result.get("unexpected_count") or 0):
            raise RuntimeError(
                f"Great Expectations returned {len(rows)} row indices for {name}"
                f" but counted {outcome.result.get('unexpected_count')}"
            )
        flagged[name] = rows
    return flagged


def _assemble(
    frame: pl.DataFrame, flagged: dict[str, np.ndarray], order: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split `frame` into valid rows and quarantined rows with their failed expectations."""
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
        pairs.sort(_ROW_INDEX, "_rank").group_by(_ROW_INDEX, maintain_order=True).agg(pl.col(FAILED_EXPECTATIONS))
    )
    indexed = frame.with_row_index(_ROW_INDEX).with_columns(pl.col(_ROW_INDEX).cast(pl.Int64))
    valid = indexed.join(failures, on=_ROW_INDEX, how="anti", maintain_order="left").drop(_ROW_INDEX)
    quarantine = indexed.join(failures, on=_ROW_INDEX, how="inner", maintain_order="right").drop(_ROW_INDEX)
    return valid, quarantine


def validate_table(
    contract: TableContract, frame: pl.DataFrame, parameters: dict[str, Any], report_parameters: dict[str, Any]
) -> ValidationOutcome:
    """Check `frame` against `contract` and its suite file; quarantine the rows that break it.

    Expectations whose run-time parameters are absent from `parameters` are skipped and
    reported as skipped (e.g. the unknown-item check when a source has no item table).
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{contract.table} must be a polars DataFrame, got {type(frame).__name__}")
    valid_parts: list[pl.DataFrame] = []
    quarantine_parts: list[pl.DataFrame] = []

    def collect(valid: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        valid_parts.append(valid)
        quarantine_parts.append(quarantine)

    report = validate_batches(contract, frame.lazy(), parameters, report_parameters, collect)
    return ValidationOutcome(valid=pl.concat(valid_parts), quarantine=pl.concat(quarantine_parts), report=report)


def validate_batches(
    contract: TableContract,
    table: pl.LazyFrame,
    parameters: dict[str, Any],
    report_parameters: dict[str, Any],
    sink: Callable[[pl.DataFrame, pl.DataFrame], None],
) -> dict[str, Any]:
    """Check `table` (a lazy frame: a scan, or an in-memory frame) `BATCH_ROWS` rows at a time;
    hand each batch's valid and quarantined rows to `sink`, in input order.

    The whole-table checks (duplicates) hash the rows once over `table`; every other expectation
    runs on one batch at a time, so a scanned table's memory follows the batch size. Returns the
    report of `validate_table`. Raises `ContractViolation` on a table-level problem before the
    first batch.
    """
    started = time.perf_counter()
    problems = table_problems(contract, table)
    if problems:
        raise ContractViolation(problems)
    suite = load_suite(contract.suite_file)
    runnable = tuple(e for e in suite.expectations if e.parameters <= parameters.keys())
    skipped = {e.name for e in suite.expectations} - {e.name for e in runnable}
    present = table.collect_schema().names()
    extra = sorted({e.column for e in runnable if e.column and e.column not in contract.schema and e.column in present})
    checked_columns = [*contract.schema, *extra]  # the schema, plus carried columns an expectation checks (event)
    whole_table = {
        e.name: _WHOLE_TABLE_CHECKS[e.type](table.select(checked_columns), **e.resolved_kwargs(parameters))
        for e in runnable
        if e.type in _WHOLE_TABLE_CHECKS
    }
    per_batch = tuple(e for e in runnable if e.name not in whole_table)
    counts = dict.fromkeys((e.name for e in runnable), 0)
    rows = {"input": 0, "valid": 0, "quarantined": 0}
    n_rows = table.select(pl.len()).collect().item()
    for offset in range(0, n_rows, BATCH_ROWS):
        batch = table.slice(offset, BATCH_ROWS).collect()
        flagged = _flag_batch(batch.select(checked_columns), suite.name, per_batch, parameters)
        for name, positions in whole_table.items():
            inside = positions[(positions >= rows["input"]) & (positions < rows["input"] + batch.height)]
            flagged[name] = inside - rows["input"]
        valid, quarantine = _assemble(batch, flagged, [e.name for e in runnable])
        if valid.height + quarantine.height != batch.height:  # an internal invariant, not input validation
            raise RuntimeError(f"contract split lost rows: {valid.height} + {quarantine.height} != {batch.height}")
        for name, positions in flagged.items():
            counts[name] += len(positions)
        rows = {
            "input": rows["input"] + batch.height,
            "valid": rows["valid"] + valid.height,
            "quarantined": rows["quarantined"] + quarantine.height,
        }
        sink(valid, quarantine)
    row_entries = [
        {
            "name": e.name,
            "expectation_type": e.type,
            "column": e.column,
            "engine": e.engine,
            "reason": e.reason,
            "policy": e.policy,
            "unexpected_count": counts.get(e.name, 0),
            "success": None if e.name in skipped else counts[e.name] == 0,
            "skipped": e.name in skipped,
        }
        for e in suite.expectations
    ]
    report = {
        "suite": suite.name,
        "success": rows["quarantined"] == 0,
        "input_rows": rows["input"],
        "valid_rows": rows["valid"],
        "quarantined_rows": rows["quarantined"],
        "parameters": report_parameters,
        "expectations": _table_entries(contract) + row_entries,
        "seconds": round(time.perf_counter() - started, 3),
    }
    logger.info(
        "%s contract: %d rows, %d valid, %d quarantined in %.2f s",
        contract.table,
        rows["input"],
        rows["valid"],
        rows["quarantined"],
        report["seconds"],
    )
    return report


def _flag_batch(
    checked: pl.DataFrame, suite_name: str, expectations: tuple[RowExpectation, ...], parameters: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The row positions of one batch that each (row-level) expectation flags: GX's, then Polars'."""
    flagged: dict[str, np.ndarray] = {}
    gx_expectations = tuple(e for e in expectations if e.engine == GX_ENGINE)
    if gx_expectations:
        gx_columns = sorted({e.column for e in gx_expectations if e.column})
        flagged |= _run_great_expectations(checked.select(gx_columns), suite_name, gx_expectations, parameters)
    for expectation in expectations:
        if expectation.engine == POLARS_ENGINE:
            flagged[expectation.name] = _run_polars(checked, expectation, parameters)
    return flagged
