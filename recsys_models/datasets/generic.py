"""Ratings from any CSV, TSV or Parquet file, parsed so that no input row is lost.

Text files are read with every field as a string, then cast. A row whose required value is
missing or does not parse goes to `RawDataset.rejected` with its raw strings and a reason, so
`len(ratings) + len(rejected)` equals the number of data rows (blank lines are not rows).
Range checks (rating scale, plausible timestamps, unknown items) belong to validation.
"""

import logging
from pathlib import Path
from typing import TypeVar

import polars as pl

from recsys_models.columns import ITEM_ID, RATING, RATINGS_SCHEMA, TIMESTAMP, USER_ID
from recsys_models.datasets.types import HALF_STARS, RatingScale, RawDataset
from recsys_models.exceptions import DataSourceError

logger = logging.getLogger(__name__)

ROW_NUMBER = "row_number"  # 1-based record number in the source, header excluded
REASON = "reason"
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    ROW_NUMBER: pl.Int64(),
    USER_ID: pl.String(),
    ITEM_ID: pl.String(),
    RATING: pl.String(),
    TIMESTAMP: pl.String(),
    REASON: pl.String(),
}
EXTRA_FIELDS = "__extra_fields__"  # non-null where a text row has more fields than its header
ROW_INDEX = "__row_number__"  # ROW_NUMBER while reading, named apart from the source's columns
SEPARATORS = {".csv": ",", ".tsv": "\t"}
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _text_table_options(names: list[str], separator: str, skip_header: bool, quote_char: str | None) -> dict:
    """Polars CSV options shared by the eager and the lazy reader: every field a string."""
    return {
        "has_header": False,
        "skip_rows": 1 if skip_header else 0,
        "separator": separator,
        "quote_char": quote_char,
        "schema": {name: pl.String() for name in [*names, EXTRA_FIELDS]},
        "missing_columns": "insert",
        "truncate_ragged_lines": True,
        "row_index_name": ROW_INDEX,
        "row_index_offset": 1,
    }


def _without_blank_lines(table: Frame) -> Frame:
    blank = pl.all_horizontal(pl.exclude(ROW_INDEX).is_null())
    return table.filter(~blank).with_columns(pl.col(ROW_INDEX).cast(pl.Int64))


def scan_text_table(
    path: Path, names: list[str], *, separator: str, skip_header: bool, quote_char: str | None = '"'
) -> pl.LazyFrame:
    """`read_text_table` as a lazy scan (UTF-8, lossy): nothing is read until it is collected."""
    options = _text_table_options(names, separator, skip_header, quote_char)
    return _without_blank_lines(pl.scan_csv(path, encoding="utf8-lossy", **options))


def read_text_table(
    path: Path,
    names: list[str],
    *,
    separator: str,
    skip_header: bool,
    encoding: str = "utf8-lossy",
    quote_char: str | None = '"',
) -> pl.DataFrame:
    """Read a delimited file with every field as a string (null when empty or absent).

    The result has `ROW_INDEX`, the columns `names` and `EXTRA_FIELDS`, which holds the first
    field beyond `names` on rows that have too many. Blank lines are skipped. Bytes that are not
    UTF-8 become U+FFFD instead of failing the whole file, so the contracts can quarantine just
    the rows that hold them (an id that does not parse is rejected; a title is quarantined).
    """
    options = _text_table_options(names, separator, skip_header, quote_char)
    try:
        table = pl.read_csv(path, encoding=encoding, **options)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataSourceError(f"cannot read {path}: {error}") from error
    return _without_blank_lines(table)


def read_header(path: Path, separator: str) -> list[str]:
    """Column names from the first line of a delimited file."""
    try:
        return pl.read_csv(path, n_rows=0, separator=separator, infer_schema=False).columns
    except pl.exceptions.NoDataError as error:
        raise DataSourceError(f"{path} is empty: expected a header line") from error
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataSourceError(f"cannot read the header of {path}: {error}") from error


def _problem(column: str, parsed: pl.Expr, expected: str) -> pl.Expr:
    """Why `column` is unusable on a row, or null when it parsed."""
    raw = pl.col(column)
    return (
        pl.when(raw.is_null() | (raw.str.strip_chars() == ""))
        .then(pl.lit(f"{column} is missing"))
        .when(parsed.is_null())
        .then(pl.format(f"{column} is not {expected}: '{{}}'", raw))
    )


def _as_integer(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)


def _as_finite_float(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def parse_ratings(
    raw: pl.DataFrame | pl.LazyFrame, n_fields: int, source: str = "ratings"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split string rows into typed ratings (`RATINGS_SCHEMA`) and rejected rows.

    `raw` has `ROW_NUMBER` and the four rating columns as strings, and optionally
    `EXTRA_FIELDS` (see `read_text_table`); `n_fields` is the expected field count per row.
    A lazy `raw` (a scan) runs on Polars' streaming engine: the string rows are parsed batch by
    batch and never held whole, only the typed ratings and the rejected rows are. `source` names
    the input in the error raised when the scan cannot be read.
    """
    parsed = {
        USER_ID: _as_integer(USER_ID),
        ITEM_ID: _as_integer(ITEM_ID),
        RATING: _as_finite_float(RATING),
        TIMESTAMP: _as_integer(TIMESTAMP),
    }
    problems = [
        _problem(USER_ID, parsed[USER_ID], "an integer"),
        _problem(ITEM_ID, parsed[ITEM_ID], "an integer"),
        _problem(RATING, parsed[RATING], "a finite number"),
        _problem(TIMESTAMP, parsed[TIMESTAMP], "an integer (Unix seconds)"),
    ]
    raw = raw.lazy()
    if EXTRA_FIELDS in raw.collect_schema().names():
        too_many = pl.when(pl.col(EXTRA_FIELDS).is_not_null()).then(pl.lit(f"row has more than {n_fields} fields"))
        problems.insert(0, too_many)
    reason = pl.concat_str(problems, separator="; ", ignore_nulls=True)
    checked = raw.with_columns(pl.when(reason != "").then(reason).alias(REASON))
    typed = checked.filter(pl.col(REASON).is_null()).select(
        expression.cast(dtype).alias(name) for (name, dtype), expression in zip(RATINGS_SCHEMA.items(), parsed.values())
    )
    failed = checked.filter(pl.col(REASON).is_not_null()).select(
        pl.col(name).cast(dtype) for name, dtype in REJECTED_SCHEMA.items()
    )
    try:
        ratings, rejected = pl.collect_all([typed, failed], engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataSourceError(f"cannot read {source}: {error}") from error
    if len(rejected):
        total = len(ratings) + len(rejected)
        logger.warning("rejected %d of %d rating rows, first: %s", len(rejected), total, rejected.row(0, named=True))
    return ratings, rejected


def _target_columns(column_map: dict[str, str] | None) -> dict[str, str]:
    """Map each ratings column to its source column name."""
    mapping = dict(column_map or {})
    unknown = sorted(set(mapping.values()) - set(RATINGS_SCHEMA))
    if unknown:
        raise ValueError(f"column_map targets must be among {list(RATINGS_SCHEMA)}, got {unknown}")
    sources = {target: source for source, target in mapping.items()}
    return {target: sources.get(target, target) for target in RATINGS_SCHEMA}


def _require_columns(path: Path, found: list[str], sources: dict[str, str]) -> None:
    missing = [f"'{source}' (for {target})" for target, source in sources.items() if source not in found]
    if missing:
        raise DataSourceError(f"{path} lacks column(s) {', '.join(missing)}; columns found: {found}")


def _scan_parquet_as_strings(path: Path, sources: dict[str, str]) -> pl.LazyFrame:
    """The rating columns of a Parquet file as strings, lazily; datetimes become Unix seconds first."""
    try:
        table = pl.scan_parquet(path)
        schema = table.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataSourceError(f"cannot read {path}: {error}") from error
    _require_columns(path, schema.names(), sources)
    columns = []
    for target, source in sources.items():
        column = pl.col(source)
        if isinstance(schema[source], (pl.Datetime, pl.Date)):
            column = column.dt.epoch("s")
        columns.append(column.cast(pl.String).alias(target))
    numbered = table.with_row_index(ROW_NUMBER, offset=1).with_columns(pl.col(ROW_NUMBER).cast(pl.Int64))
    return numbered.select(ROW_NUMBER, *columns)


def load_ratings_file(
    path: Path, column_map: dict[str, str] | None = None, scale: RatingScale = HALF_STARS
) -> RawDataset:
    """Ratings from a .csv, .tsv or .parquet file with a header; items and tags are None.

    `column_map` maps source column names to `user_id`, `item_id`, `rating`, `timestamp`;
    unmapped ratings columns are expected under their own names. Other columns are ignored.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {*SEPARATORS, ".parquet"}:
        raise DataSourceError(f"{path}: unsupported ratings file type '{suffix}', use .csv, .tsv or .parquet")
    if not path.is_file():
        raise DataSourceError(f"ratings file not found: {path}")
    sources = _target_columns(column_map)
    if suffix == ".parquet":
        raw = _scan_parquet_as_strings(path, sources)
        n_fields = len(sources)
    else:
        header = read_header(path, SEPARATORS[suffix])
        _require_columns(path, header, sources)
        table = scan_text_table(path, header, separator=SEPARATORS[suffix], skip_header=True)
        renamed = (pl.col(source).alias(target) for target, source in sources.items())
        raw = table.select(pl.col(ROW_INDEX).alias(ROW_NUMBER), EXTRA_FIELDS, *renamed)
        n_fields = len(header)
    ratings, rejected = parse_ratings(raw, n_fields, str(path))
    logger.info("%s: %d ratings, %d rejected rows", path, len(ratings), len(rejected))
    return RawDataset(
        name=path.stem, ratings=ratings, items=None, tags=None, rejected=rejected, scale=scale, source=str(path)
    )
