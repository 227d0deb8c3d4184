"""Ratings from any CSV, TSV or Parquet file, parsed so that no input row is lost.

Text files are read with every field as a string, then cast. A row whose required value is
missing or does not parse goes to `RawDataset.rejected` with its raw strings and a reason, so
`len(ratings) + len(rejected)` equals the number of data rows (blank lines are not rows).
Lines are counted before parsing: a row of interactions never spans lines, so a quoted field that
does (a stray quote merging the lines after it into one row) stops the load on one line.
Range checks (rating scale, plausible timestamps, unknown items) belong to validation.
"""

import gzip
import io
import logging
from pathlib import Path
from typing import TypeVar

import polars as pl

from recsys_models.columns import ITEM_ID, RATING, RATINGS_SCHEMA, TIMESTAMP, USER_ID
from recsys_models.datasets.types import HALF_STARS, RatingScale, RawDataset
from recsys_models.exceptions import DataSourceError

logger = logging.getLogger(__name__)

ROW_NUMBER = "row_number"  # 1-based row number in the source, header excluded (text: the line it starts on)
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
QUOTE = '"'
QUOTED_LIMIT = 80  # characters of raw data a reason or an error message quotes
GZIP_MAGIC = b"\x1f\x8b"  # Polars reads gzip-compressed text files transparently
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
    path: Path, names: list[str], *, separator: str, skip_header: bool, quote_char: str | None = QUOTE
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
    quote_char: str | None = QUOTE,
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
        raise unreadable(path, error, quote_char) from error
    return _without_blank_lines(table)


def _open_bytes(path: Path) -> io.BufferedIOBase:
    """`path` for reading as bytes, decompressed when it is gzip."""
    with open(path, "rb") as probe:
        gzipped = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _first_unbalanced_line(path: Path) -> tuple[int, str] | None:
    """The first line of `path` (1-based, header included) holding an odd number of quotes, and its
    text; None when every line's quotes pair up."""
    with _open_bytes(path) as lines:
        for number, line in enumerate(lines, start=1):
            if line.count(QUOTE.encode()) % 2:
                return number, line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return None


def stray_quote(path: Path, effect: str) -> DataSourceError | None:
    """The one-line error naming the first line of `path` whose quotes do not pair up and what that
    quote does (`effect`), quoting the line; None when there is no such line."""
    found = _first_unbalanced_line(path)
    if found is None:
        return None
    number, text = found
    shown = text[:QUOTED_LIMIT]
    return DataSourceError(f"{path}, line {number}: a '{QUOTE}' {effect}; fix or remove it. The line: {shown!r}")


def unreadable(path: Path, error: Exception, quote_char: str | None) -> DataSourceError:
    """The one-line error for a text file Polars could not read: its stray quote when it has one."""
    if quote_char is not None and isinstance(error, pl.exceptions.PolarsError):
        effect = "opens a quoted field that does not close where a field ends, so the file cannot be read"
        found = stray_quote(path, effect)
        if found is not None:
            return found
    return DataSourceError(f"cannot read {path}: {str(error).splitlines()[0][:200]}")


def _count_records(path: Path, separator: str, quote_char: str | None) -> int:
    """Records of a delimited file, header and blank lines included, counted without parsing a
    field; with `quote_char` None, its physical lines."""
    scan = pl.scan_csv(
        path,
        has_header=False,
        separator=separator,
        quote_char=quote_char,
        infer_schema=False,
        truncate_ragged_lines=True,
        encoding="utf8-lossy",
    )
    try:
        return scan.select(pl.len()).collect().item()
    except pl.exceptions.NoDataError:
        return 0
    except (pl.exceptions.PolarsError, OSError) as error:
        raise unreadable(path, error, None) from error


def swallowed_lines(path: Path, separator: str, quote_char: str | None = QUOTE) -> int:
    """How many lines of a delimited file quoted fields spanning lines took beyond one per record."""
    if quote_char is None:
        return 0
    return _count_records(path, separator, None) - _count_records(path, separator, quote_char)


def require_one_line_per_row(path: Path, separator: str) -> None:
    """Fail on one line when a quoted field of an interactions file spans lines: such a row never
    does, so it is a stray quote merging the lines after it into one row. Reads no field."""
    swallowed = swallowed_lines(path, separator)
    if swallowed:
        effect = (
            f"opens a quoted field that runs past the end of its line ({swallowed:,} more line(s) than rows), "
            "and a row of interactions never spans lines"
        )
        raise stray_quote(path, effect) or DataSourceError(f"{path}: a '{QUOTE}' {effect}")


def read_header(path: Path, separator: str) -> list[str]:
    """Column names from the first line of a delimited file."""
    try:
        return pl.read_csv(path, n_rows=0, separator=separator, infer_schema=False).columns
    except pl.exceptions.NoDataError as error:
        raise DataSourceError(f"{path} is empty: expected a header line") from error
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataSourceError(f"cannot read the header of {path}: {error}") from error


def problem(column: str, parsed: pl.Expr, expected: str, label: str | None = None) -> pl.Expr:
    """Why `column` is unusable on a row, naming it `label` (else its own name), or null when it parsed."""
    raw, label = pl.col(column), label or column
    return (
        pl.when(raw.is_null() | (raw.str.strip_chars() == ""))
        .then(pl.lit(f"{label} is missing"))
        .when(parsed.is_null())
        .then(pl.format(f"{label} is not {expected}: '{{}}'", raw.str.slice(0, QUOTED_LIMIT)))
    )


def too_many_fields(n_fields: int) -> pl.Expr:
    """The problem of a text row with more fields than its header (see `read_text_table`)."""
    return pl.when(pl.col(EXTRA_FIELDS).is_not_null()).then(pl.lit(f"row has more than {n_fields} fields"))


def row_reason(problems: list[pl.Expr]) -> pl.Expr:
    """A row's problems joined by "; " as the `REASON` column: null when it has none."""
    reason = pl.concat_str(problems, separator="; ", ignore_nulls=True)
    return pl.when(reason != "").then(reason).alias(REASON)


def _as_integer(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)


def _as_finite_float(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def parse_ratings(
    raw: pl.DataFrame | pl.LazyFrame, n_fields: int, source: Path, quote_char: str | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split string rows into typed ratings (`RATINGS_SCHEMA`) and rejected rows.

    `raw` has `ROW_NUMBER` and the four rating columns as strings, and optionally
    `EXTRA_FIELDS` (see `read_text_table`); `n_fields` is the expected field count per row.
    A lazy `raw` (a scan) runs on Polars' streaming engine: the string rows are parsed batch by
    batch and never held whole, only the typed ratings and the rejected rows are. `source` is the
    file read, named in the error raised when it cannot be; `quote_char` its quote, when it is text.
    """
    parsed = {
        USER_ID: _as_integer(USER_ID),
        ITEM_ID: _as_integer(ITEM_ID),
        RATING: _as_finite_float(RATING),
        TIMESTAMP: _as_integer(TIMESTAMP),
    }
    problems = [
        problem(USER_ID, parsed[USER_ID], "an integer"),
        problem(ITEM_ID, parsed[ITEM_ID], "an integer"),
        problem(RATING, parsed[RATING], "a finite number"),
        problem(TIMESTAMP, parsed[TIMESTAMP], "an integer (Unix seconds)"),
    ]
    raw = raw.lazy()
    if EXTRA_FIELDS in raw.collect_schema().names():
        problems.insert(0, too_many_fields(n_fields))
    checked = raw.with_columns(row_reason(problems))
    typed = checked.filter(pl.col(REASON).is_null()).select(
        expression.cast(dtype).alias(name)
        for (name, dtype), expression in zip(RATINGS_SCHEMA.items(), parsed.values(), strict=False)
    )
    failed = checked.filter(pl.col(REASON).is_not_null()).select(
        pl.col(name).cast(dtype) for name, dtype in REJECTED_SCHEMA.items()
    )
    try:
        ratings, rejected = pl.collect_all([typed, failed], engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise unreadable(source, error, quote_char) from error
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
    quote_char = None if suffix == ".parquet" else QUOTE
    if quote_char is None:
        raw = _scan_parquet_as_strings(path, sources)
        n_fields = len(sources)
    else:
        header = read_header(path, SEPARATORS[suffix])
        _require_columns(path, header, sources)
        require_one_line_per_row(path, SEPARATORS[suffix])
        table = scan_text_table(path, header, separator=SEPARATORS[suffix], skip_header=True)
        renamed = (pl.col(source).alias(target) for target, source in sources.items())
        raw = table.select(pl.col(ROW_INDEX).alias(ROW_NUMBER), EXTRA_FIELDS, *renamed)
        n_fields = len(header)
    ratings, rejected = parse_ratings(raw, n_fields, path, quote_char)
    logger.info("%s: %d ratings, %d rejected rows", path, len(ratings), len(rejected))
    return RawDataset(
        name=path.stem, ratings=ratings, items=None, tags=None, rejected=rejected, scale=scale, source=str(path)
    )
