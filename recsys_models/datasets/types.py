"""Containers that ingestion returns: typed tables plus the rows that could not be parsed."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from recsys_models.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class RatingScale:
    """The rating scale of a source: inclusive bounds and the step between valid values."""

    minimum: float
    maximum: float
    step: float

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(f"rating scale minimum {self.minimum} must be below maximum {self.maximum}")
        if self.step <= 0:
            raise ValueError(f"rating scale step must be positive, got {self.step}")


HALF_STARS = RatingScale(minimum=0.5, maximum=5.0, step=0.5)
WHOLE_STARS = RatingScale(minimum=1.0, maximum=5.0, step=1.0)


@dataclass(frozen=True)
class RejectedRows:
    """The rows of a side table (items, tags) that could not be parsed, as the raw strings they had
    plus a `reason`, and the source lines they took: more than their count where a quoted field
    spans lines, so that the table's source lines = its parsed rows + `lines`."""

    rows: pl.DataFrame
    lines: int


@dataclass(frozen=True)
class RawDataset:
    """One source after parsing, before validation.

    `ratings`, `items` and `tags` follow `columns.RATINGS_SCHEMA`, `ITEMS_SCHEMA` and
    `TAGS_SCHEMA`. `rejected` holds every input row that could not be parsed, as the raw
    strings it had plus a `reason` column, so that input rows = parsed rows + rejected rows.
    `side_rejected` does the same for the side tables read from text ("items", "tags").
    `scale` is None for implicit feedback; `spec` is the source's dataset spec, and `ids` the
    text of every coded id (`recsys_models.ids`), when the source was read through a spec.
    """

    name: str
    ratings: pl.DataFrame
    items: pl.DataFrame | None
    tags: pl.DataFrame | None
    rejected: pl.DataFrame
    scale: RatingScale | None
    source: str  # where it came from: a folder, a file or a generator description
    spec: "DatasetSpec | None" = None
    ids: pl.DataFrame | None = None
    side_rejected: dict[str, RejectedRows] = field(default_factory=dict)
