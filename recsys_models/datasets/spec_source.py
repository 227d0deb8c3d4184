"""Ingestion of a source described by a `DatasetSpec`: any columns, ids, time format and feedback.

Every data row ends in the parsed table or in `rejected` with its raw strings and a reason
(a missing id, a time that does not parse in the spec's format, a rating or value that is not a
finite number, a row with too many fields); a text file whose quoted field spans lines stops the
load on one line naming it (`generic.require_one_line_per_row`). Parsed rows follow
`columns.RATINGS_SCHEMA`:
- ids as `recsys_models.ids` maps them (integers kept, other text coded; `RawDataset.ids` keeps
  the text of each coded id);
- `timestamp` in Unix seconds, UTC;
- `rating`: the rating (explicit), or the row's weight (implicit): its event's weight times its
  value, each 1 when the spec has none. A row whose event type has no weight keeps its value as
  weight and its `event` column, so validation quarantines it with that reason.
Range checks (scale, plausible times, unknown events) belong to validation.
"""

import logging
from pathlib import Path

import polars as pl

from recsys_models import ids
from recsys_models.columns import GENRES, ITEM_ID, ITEMS_SCHEMA, RATING, TIMESTAMP, TITLE, USER_ID, YEAR
from recsys_models.datasets.generic import (
    EXTRA_FIELDS,
    QUOTE,
    REASON,
    REJECTED_SCHEMA,
    ROW_INDEX,
    ROW_NUMBER,
    SEPARATORS,
    problem,
    read_header,
    require_one_line_per_row,
    row_reason,
    scan_text_table,
    too_many_fields,
    unreadable,
)
from recsys_models.datasets.spec import DatasetSpec
from recsys_models.datasets.types import RawDataset
from recsys_models.exceptions import DataSourceError

logger = logging.getLogger(__name__)

EVENT = "event"
_UNIX_DIVISOR = {"unix_s": 1, "unix_ms": 1_000, "unix_us": 1_000_000}
_ISO_WITH_OFFSET = "%Y-%m-%dT%H:%M:%S%.f%:z"
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")  # read as UTC


def _roles(spec: DatasetSpec) -> dict[str, str]:
    """Our column name -> the source column, for every role the spec names."""
    roles = spec.columns
    named = {
        USER_ID: roles.user,
        ITEM_ID: roles.item,
        TIMESTAMP: roles.timestamp,
        RATING: roles.rating,
        EVENT: roles.event,
        "value": roles.value,
    }
    return {ours: source for ours, source in named.items() if source is not None}


def _check_columns(spec: DatasetSpec, found: list[str]) -> None:
    """One line naming the spec key whose column the file lacks."""
    for key, source in spec.columns.model_dump(exclude_none=True).items():
        if source not in found:
            shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
            raise DataSourceError(
                f"{spec.path}: columns.{key} = '{source}' is not a column of the file; found: {shown}"
            )


def _scan(spec: DatasetSpec, roles: dict[str, str]) -> tuple[pl.LazyFrame, int, bool]:
    """The role columns as strings (ROW_NUMBER, EXTRA_FIELDS when text), the field count, and
    whether the timestamp column was already a datetime (Parquet)."""
    suffix = spec.path.suffix.lower()
    if suffix == ".parquet":
        try:
            table = pl.scan_parquet(spec.path)
            schema = table.collect_schema()
        except (pl.exceptions.PolarsError, OSError) as error:
            raise DataSourceError(f"cannot read {spec.path}: {error}") from error
        _check_columns(spec, schema.names())
        is_datetime = isinstance(schema[roles[TIMESTAMP]], (pl.Datetime, pl.Date))
        columns = []
        for ours, source in roles.items():
            column = pl.col(source)
            if ours == TIMESTAMP and is_datetime:
                column = column.dt.epoch("s")
            columns.append(column.cast(pl.String).alias(ours))
        numbered = table.with_row_index(ROW_NUMBER, offset=1).with_columns(pl.col(ROW_NUMBER).cast(pl.Int64))
        return numbered.select(ROW_NUMBER, *columns), len(roles), is_datetime
    separator = _separator(spec)
    if spec.header:
        header = read_header(spec.path, separator)
    else:
        header = [f"column_{index}" for index in range(1, _first_line_width(spec.path, separator) + 1)]
    _check_columns(spec, header)
    table = scan_text_table(spec.path, header, separator=separator, skip_header=spec.header)
    renamed = (pl.col(source).alias(ours) for ours, source in roles.items())
    return table.select(pl.col(ROW_INDEX).alias(ROW_NUMBER), EXTRA_FIELDS, *renamed), len(header), False


def _is_text(spec: DatasetSpec) -> bool:
    """Whether the source is a delimited text file (anything but Parquet)."""
    return spec.path.suffix.lower() != ".parquet"


def _separator(spec: DatasetSpec) -> str:
    """The field separator of a text source: the spec's, else the one its file type implies."""
    suffix = spec.path.suffix.lower()
    separator = spec.separator or SEPARATORS.get(suffix)
    if separator is None:
        raise DataSourceError(
            f"{spec.path}: unsupported file type '{suffix}': use .csv, .tsv or .parquet, or set separator"
        )
    return separator


def _first_line_width(path: Path, separator: str) -> int:
    """Fields on the first non-blank line of a headerless text file (its columns)."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        first = next((line for line in lines if line.strip()), "")
    return len(first.rstrip("\r\n").split(separator)) if first else 0


def check_source_columns(spec: DatasetSpec) -> None:
    """Read only the file's header (or Parquet schema) and fail on one line when a role's column is
    missing: the check a run does before any stage starts."""
    _scan(spec, _roles(spec))


def _id(spec: DatasetSpec, column: str) -> tuple[pl.Expr, str]:
    """An id column as parsed (null where it is unusable) and what was expected of it."""
    text = pl.col(column).str.strip_chars()
    if spec.ids == "integer":
        return text.cast(pl.Int64, strict=False), "an integer"
    return text.replace("", None), "an id"


def _finite(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _unix_seconds(spec: DatasetSpec, already_seconds: bool) -> tuple[pl.Expr, str]:
    """The timestamp as Unix seconds (null where it does not parse), and what was expected."""
    text = pl.col(TIMESTAMP).str.strip_chars()
    time_format = "unix_s" if already_seconds else (spec.timestamp_format or "unix_s")
    if time_format != "iso8601":
        number = text.cast(pl.Int64, strict=False)
        return number.floordiv(_UNIX_DIVISOR[time_format]), f"an integer ({time_format})"
    normal = text.str.replace(" ", "T").str.replace(r"Z$", "+00:00")
    moments = [normal.str.to_datetime(_ISO_WITH_OFFSET, strict=False, time_unit="us").dt.convert_time_zone("UTC")]
    moments += [
        normal.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC") for fmt in _ISO_NAIVE
    ]
    return pl.coalesce(moments).dt.epoch("s"), "an ISO 8601 time"


def _weight(spec: DatasetSpec) -> tuple[pl.Expr, list[pl.Expr]]:
    """The implicit weight of a row and the problems that make it unparseable."""
    problems: list[pl.Expr] = []
    weight = pl.lit(1.0)
    if spec.columns.value is not None:
        weight = _finite("value")
        problems.append(problem("value", weight, "a finite number", spec.columns.value))
    if spec.event_weights is not None:
        weights = (
            pl.col(EVENT).str.strip_chars().replace_strict(spec.event_weights, default=1.0, return_dtype=pl.Float64)
        )
        problems.append(pl.when(pl.col(EVENT).is_null()).then(pl.lit(f"{spec.columns.event} is missing")))
        weight = weight * weights
    return weight, problems


def load_spec_source(spec: DatasetSpec) -> RawDataset:
    """Parse the interactions a spec describes; no row is lost (see the module docstring)."""
    roles = _roles(spec)
    raw, n_fields, already_seconds = _scan(spec, roles)
    if _is_text(spec):
        require_one_line_per_row(spec.path, _separator(spec))
    seconds, expected_time = _unix_seconds(spec, already_seconds)
    problems = [too_many_fields(n_fields)] if EXTRA_FIELDS in raw.collect_schema().names() else []
    problems += [
        problem(USER_ID, *_id(spec, USER_ID), spec.columns.user),
        problem(ITEM_ID, *_id(spec, ITEM_ID), spec.columns.item),
    ]
    if spec.feedback == "explicit":
        value = _finite(RATING)
        problems.append(problem(RATING, value, "a finite number", roles[RATING]))
    else:
        value, weight_problems = _weight(spec)
        problems += weight_problems
    problems.append(problem(TIMESTAMP, seconds, expected_time, spec.columns.timestamp))
    checked = raw.with_columns(row_reason(problems))
    extra = [pl.col(EVENT).str.strip_chars()] if EVENT in roles else []
    typed = checked.filter(pl.col(REASON).is_null()).select(
        pl.col(USER_ID), pl.col(ITEM_ID), value.cast(pl.Float64).alias(RATING), seconds.alias(TIMESTAMP), *extra
    )
    rating_text = RATING if RATING in roles else "value" if "value" in roles else None
    failed = checked.filter(pl.col(REASON).is_not_null()).select(
        pl.col(ROW_NUMBER).cast(pl.Int64),
        pl.col(USER_ID),
        pl.col(ITEM_ID),
        (pl.col(rating_text) if rating_text else pl.lit(None, pl.String)).alias(RATING),
        pl.col(TIMESTAMP),
        pl.col(REASON),
    )
    try:
        parsed, rejected = pl.collect_all([typed, failed], engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise unreadable(spec.path, error, QUOTE if _is_text(spec) else None) from error
    if spec.ids == "integer":
        id_table = None
        parsed = parsed.with_columns(pl.col(USER_ID, ITEM_ID).str.strip_chars().cast(pl.Int64))
    else:
        id_table = pl.concat([ids.id_table(parsed[USER_ID], "user"), ids.id_table(parsed[ITEM_ID], "item")])
        parsed = parsed.with_columns(ids.encode_texts(parsed[USER_ID]), ids.encode_texts(parsed[ITEM_ID]))
    if rejected.height:
        logger.warning(
            "%s: rejected %d of %d rows, first: %s",
            spec.path,
            rejected.height,
            rejected.height + parsed.height,
            rejected.row(0, named=True),
        )
    items = None
    if spec.items is not None:
        items, item_texts = load_spec_items(spec)
        if id_table is not None:  # items without interactions keep their text too
            id_table = pl.concat([id_table, ids.id_table(item_texts, "item")]).unique(maintain_order=True)
    return RawDataset(
        name=spec.name,
        ratings=parsed,
        items=items,
        tags=None,
        rejected=rejected.cast(REJECTED_SCHEMA),  # type: ignore[arg-type]
        scale=spec.scale,
        source=str(Path(spec.path)),
        spec=spec,
        ids=id_table,
    )


def _read_table(path: Path, separator: str | None) -> pl.DataFrame:
    """A whole CSV, TSV or Parquet file, text columns as strings."""
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        separator = separator or SEPARATORS.get(path.suffix.lower(), ",")
        return pl.read_csv(path, separator=separator, infer_schema=False, encoding="utf8-lossy")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise unreadable(path, error, None if path.suffix.lower() == ".parquet" else QUOTE) from error


def load_spec_items(spec: DatasetSpec) -> tuple[pl.DataFrame, pl.Series]:
    """The spec's item table as `ITEMS_SCHEMA`, and its raw id texts. The table has: ids mapped like the interactions' ids, the title
    column (else the id's text, so no title is missing), no year, and `genres` holding one
    `column=value` entry per category value. A row without an id keeps a null id, which the items
    contract quarantines."""
    assert spec.items is not None
    items = spec.items
    table = _read_table(items.path, spec.separator)
    id_column = items.id or spec.columns.item
    title = items.title or ("title" if "title" in table.columns and id_column != "title" else None)
    categories = (
        items.categories
        if items.categories is not None
        else [column for column in table.columns if column not in (id_column, title)]
    )
    for key, column in [("items.id", id_column), ("items.title", title)] + [
        ("items.categories", c) for c in categories
    ]:
        if column is not None and column not in table.columns:
            raise DataSourceError(
                f"{items.path}: {key} = '{column}' is not a column of the file; found: {table.columns}"
            )
    text = table.select(pl.all().cast(pl.String).str.strip_chars())
    ids_text = text[id_column]
    item_ids = ids_text.cast(pl.Int64, strict=False) if spec.ids == "integer" else ids.encode_texts(ids_text)
    entries = []
    for column in categories:
        values = (
            text[column].str.split(items.list_separator)
            if items.list_separator
            else text[column].cast(pl.List(pl.String))
        )
        cleaned = values.list.eval(pl.element().str.strip_chars().str.replace_all(r"[|\x00-\x1f]", " "))
        entries.append(cleaned.list.eval(pl.lit(f"{column}=") + pl.element()).list.drop_nulls())
    genres = pl.DataFrame(entries).select(pl.concat_list(pl.all())).to_series() if entries else None
    return pl.DataFrame(
        {
            ITEM_ID: item_ids,
            TITLE: text[title] if title is not None else ids_text,
            YEAR: pl.Series(YEAR, [None] * table.height, dtype=pl.Int32),
            GENRES: genres if genres is not None else pl.Series(GENRES, [[]] * table.height, dtype=pl.List(pl.String)),
        }
    ).cast(ITEMS_SCHEMA), ids_text  # type: ignore[arg-type]
