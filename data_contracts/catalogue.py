"""Contracts of the item table and the tags table (`suites/items.json`, `suites/tags.json`)."""

from datetime import UTC, datetime
from typing import Any

import polars as pl

from data_contracts.engine import TableContract, ValidationOutcome, validate_table
from data_contracts.ratings import EARLIEST_TIMESTAMP, checked_now
from recsys_models import columns

ITEMS = TableContract(
    table="items",
    suite_file="items.json",
    schema=columns.ITEMS_SCHEMA,
    id_columns=(columns.ITEM_ID,),
    reasons={
        "expect_table_columns_to_match_schema": "Features and reports read these columns with these dtypes.",
        "expect_table_row_count_to_be_between": "An empty item table would make every rating an unknown item.",
        "expect_column_values_to_not_be_null_everywhere": "Item ids missing in every row mean a broken source.",
    },
)
TAGS = TableContract(
    table="tags",
    suite_file="tags.json",
    schema=columns.TAGS_SCHEMA,
    id_columns=(columns.USER_ID, columns.ITEM_ID),
    reasons={
        "expect_table_columns_to_match_schema": "Tag features read these columns with these dtypes.",
        "expect_table_row_count_to_be_between": "A source that ships a tag file with no rows lost them on the way.",
        "expect_column_values_to_not_be_null_everywhere": "Ids missing in every row mean a broken source.",
    },
)
FUTURE_YEARS = 5  # films are announced with next years' dates


def validate_items(items: pl.DataFrame, now: datetime | None = None) -> ValidationOutcome:
    """Check the item table; quarantine duplicate ids, malformed titles and genres, implausible years."""
    now = checked_now(now)
    parameters: dict[str, Any] = {"year_max": now.year + FUTURE_YEARS}
    return validate_table(ITEMS, items, parameters, parameters | {"now": now.astimezone(UTC).isoformat()})


def validate_tags(tags: pl.DataFrame, valid_items: pl.DataFrame, now: datetime | None = None) -> ValidationOutcome:
    """Check the tags table against the valid items; quarantine the rows that break it."""
    now = checked_now(now)
    parameters: dict[str, Any] = {
        "timestamp_min": EARLIEST_TIMESTAMP,
        "timestamp_max": int(now.timestamp()),
        "known_item_ids": valid_items.get_column(columns.ITEM_ID).drop_nulls().unique(),
    }
    report_parameters = {
        "timestamp_min": EARLIEST_TIMESTAMP,
        "timestamp_max": parameters["timestamp_max"],
        "now": now.astimezone(UTC).isoformat(),
        "known_items": len(parameters["known_item_ids"]),
    }
    return validate_table(TAGS, tags, parameters, report_parameters)
