"""Column names and Polars schemas shared by every stage (one place, no string typos)."""

import polars as pl

USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"
TITLE = "title"
YEAR = "year"
GENRES = "genres"
TAG = "tag"
RANK = "rank"
SCORE = "score"

RATINGS_SCHEMA: dict[str, pl.DataType] = {
    USER_ID: pl.Int64(),
    ITEM_ID: pl.Int64(),
    RATING: pl.Float64(),
    TIMESTAMP: pl.Int64(),  # Unix seconds, UTC
}
ITEMS_SCHEMA: dict[str, pl.DataType] = {
    ITEM_ID: pl.Int64(),
    TITLE: pl.String(),
    YEAR: pl.Int32(),  # release year, null when unknown
    GENRES: pl.List(pl.String()),
}
TAGS_SCHEMA: dict[str, pl.DataType] = {
    USER_ID: pl.Int64(),
    ITEM_ID: pl.Int64(),
    TAG: pl.String(),
    TIMESTAMP: pl.Int64(),
}
