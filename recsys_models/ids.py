"""Raw ids of any type on the pipeline's integer id columns, and back.

Every stage and model keys users and items by Int64. A source's ids map onto that without state:
- an id written as a canonical non-negative integer ("42", not "042" or "+42") below 2**62 is
  that integer, so integer sources (MovieLens) keep their ids unchanged;
- any other text ("u196", "SKU-00242", "042") is a stable code in [2**62, 2**63): 2**62 plus the
  first 62 bits of its BLAKE2b digest. The same text gives the same code in every run and
  process (models trained yesterday score today's ids), and no code meets an integer id.
The ingest stage keeps the texts of coded ids in an id table (`ID_TABLE_SCHEMA`); outputs that
people read (recommendations, scores, the pyfunc's answers) turn codes back into their text.
"""

import hashlib

import numpy as np
import polars as pl

CODE_BASE = 1 << 62
ROLE, CODE, RAW = "role", "code", "raw"
ID_TABLE_SCHEMA: dict[str, pl.DataType] = {ROLE: pl.String(), CODE: pl.Int64(), RAW: pl.String()}
_CANONICAL_INTEGER = r"^(0|[1-9][0-9]{0,17})$"  # at most 18 digits: below 2**62


def text_code(text: str) -> int:
    """The code of a non-integer id text."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return CODE_BASE + (int.from_bytes(digest, "big") >> 2)


def is_integer_text(column: pl.Expr) -> pl.Expr:
    """True where the (stripped) text is a canonical integer that is kept as itself."""
    return column.str.contains(_CANONICAL_INTEGER)


def encode_texts(texts: pl.Series) -> pl.Series:
    """Int64 ids of id texts (nulls stay null); see the module docstring for the rule."""
    texts = texts.cast(pl.String).str.strip_chars()
    integer = texts.str.contains(_CANONICAL_INTEGER)
    distinct = texts.filter(~integer.fill_null(True)).unique()
    lookup = pl.DataFrame(
        {RAW: distinct, CODE: [text_code(text) for text in distinct.to_list()]},
        schema={RAW: pl.String(), CODE: pl.Int64()},
    )
    frame = pl.DataFrame({RAW: texts}).join(lookup, on=RAW, how="left", maintain_order="left")
    as_integer = pl.col(RAW).cast(pl.Int64, strict=False)
    return frame.select(pl.when(integer).then(as_integer).otherwise(pl.col(CODE)).alias(texts.name)).to_series()


def id_table(texts: pl.Series, role: str) -> pl.DataFrame:
    """The coded ids among `texts` with their text (integers are their own text and are left out)."""
    texts = texts.cast(pl.String).str.strip_chars().drop_nulls().unique().sort()
    coded = texts.filter(~texts.str.contains(_CANONICAL_INTEGER))
    table = pl.DataFrame(
        {ROLE: [role] * coded.len(), CODE: [text_code(text) for text in coded.to_list()], RAW: coded},
        schema=ID_TABLE_SCHEMA,
    )
    clash = table.filter(pl.col(CODE).is_duplicated())
    if clash.height:  # 2**-62 per pair: never seen, but a silent merge of two ids must be impossible
        raise ValueError(f"id codes collide for {role} ids {clash[RAW].to_list()[:2]}")
    return table


def decode_column(frame: pl.DataFrame, column: str, table: pl.DataFrame | None, role: str) -> pl.DataFrame:
    """`frame` with `column`'s codes of `role` turned back into their text (String), integers as
    their digits; unchanged (Int64) when the source coded no id of that role."""
    if table is None:
        return frame
    texts = table.filter(pl.col(ROLE) == role).select(pl.col(CODE).alias(column), pl.col(RAW).alias("__raw__"))
    if texts.is_empty():
        return frame
    joined = frame.join(texts, on=column, how="left", maintain_order="left")
    return joined.with_columns(pl.coalesce(pl.col("__raw__"), pl.col(column).cast(pl.String)).alias(column)).drop(
        "__raw__"
    )


def encode_values(values: list | np.ndarray | pl.Series) -> np.ndarray:
    """Int64 ids of raw ids given by a caller (integers as they are, text coded): the serving side."""
    if isinstance(values, pl.Series):
        series = values
    else:
        items = list(values)
        texts = all(isinstance(value, str) for value in items)
        series = pl.Series("id", [str(value) for value in items] if not texts else items, dtype=pl.String)
        if items and all(isinstance(value, (int, np.integer)) for value in items):
            series = pl.Series("id", items, dtype=pl.Int64)
    if series.dtype.is_integer():
        return series.cast(pl.Int64).to_numpy()
    return encode_texts(series.cast(pl.String)).to_numpy()
