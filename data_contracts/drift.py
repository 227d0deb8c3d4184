"""Drift of a new ratings table against the last successful run's: new users and items, rating
distribution, volume. Beyond the bounds a run warns (default) or fails."""

from dataclasses import dataclass
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from data_contracts.engine import ContractViolation
from recsys_models import columns


class DriftBounds(BaseModel):
    """How far a nightly table may move from the previous one before someone should look."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_user_share: float = Field(default=0.2, ge=0, le=1, description="Share of users not seen before.")
    max_new_item_share: float = Field(default=0.2, ge=0, le=1, description="Share of items not seen before.")
    max_rating_mean_shift: float = Field(default=0.2, ge=0, description="Absolute change of the mean rating.")
    max_rating_distance: float = Field(
        default=0.1, ge=0, le=1, description="Total variation distance between the rating distributions."
    )
    min_volume_change: float = Field(default=-0.05, description="Relative row-count change, lower bound.")
    max_volume_change: float = Field(default=0.5, description="Relative row-count change, upper bound.")
    policy: Literal["warn", "fail"] = Field(default="warn", description="What a breach does to the run.")


@dataclass(frozen=True)
class DriftResult:
    figures: dict[str, float]
    breaches: list[str]


def measure_drift(current: pl.LazyFrame | pl.DataFrame, reference: pl.LazyFrame | pl.DataFrame) -> dict[str, float]:
    """Figures comparing `current` ratings with `reference` ratings (both validated); scans are
    read column by column in aggregates, never whole."""
    current, reference = current.lazy(), reference.lazy()

    def share_new(column: str) -> float:
        values = current.select(pl.col(column).unique())
        new = values.join(reference.select(pl.col(column).unique()), on=column, how="anti")
        n_values, n_new = pl.collect_all([values.select(pl.len()), new.select(pl.len())])
        return n_new.item() / n_values.item() if n_values.item() else 0.0

    def summary(frame: pl.LazyFrame) -> tuple[pl.DataFrame, float, int]:
        counts = frame.group_by(columns.RATING).agg(pl.len().alias("share"))
        lazy_shares = counts.with_columns(pl.col("share") / pl.col("share").sum())
        lazy_totals = frame.select(pl.col(columns.RATING).mean().alias("mean"), pl.len().alias("rows"))
        shares, totals = pl.collect_all([lazy_shares, lazy_totals])
        return shares, float(totals["mean"].item() or 0.0), int(totals["rows"].item())

    (shares, mean, rows), (reference_shares, reference_mean, reference_rows) = summary(current), summary(reference)
    joined = shares.join(reference_shares, on=columns.RATING, how="full", coalesce=True)
    gaps = (pl.col("share").fill_null(0) - pl.col("share_right").fill_null(0)).abs()
    distance = 0.5 * joined.select(gaps.sum()).item()
    return {
        "new_user_share": share_new(columns.USER_ID),
        "new_item_share": share_new(columns.ITEM_ID),
        "rating_mean": mean,
        "reference_rating_mean": reference_mean,
        "rating_mean_shift": abs(mean - reference_mean),
        "rating_distance": float(distance),
        "rows": float(rows),
        "reference_rows": float(reference_rows),
        "volume_change": (rows - reference_rows) / max(reference_rows, 1),
    }


def check_drift(
    current: pl.LazyFrame | pl.DataFrame, reference: pl.LazyFrame | pl.DataFrame, bounds: DriftBounds
) -> DriftResult:
    """Measure drift and list the breached bounds; raise `ContractViolation` under the `fail` policy."""
    figures = measure_drift(current, reference)
    limits = [
        ("new_user_share", figures["new_user_share"] > bounds.max_new_user_share, bounds.max_new_user_share),
        ("new_item_share", figures["new_item_share"] > bounds.max_new_item_share, bounds.max_new_item_share),
        (
            "rating_mean_shift",
            figures["rating_mean_shift"] > bounds.max_rating_mean_shift,
            bounds.max_rating_mean_shift,
        ),
        ("rating_distance", figures["rating_distance"] > bounds.max_rating_distance, bounds.max_rating_distance),
    ]
    breaches = [
        f"ratings drift: {name} is {figures[name]:.3f}, above {limit:.3f}" for name, broke, limit in limits if broke
    ]
    if not bounds.min_volume_change <= figures["volume_change"] <= bounds.max_volume_change:
        breaches.append(
            f"ratings drift: row count changed by {figures['volume_change']:+.1%} "
            f"({int(figures['reference_rows'])} -> {int(figures['rows'])}), outside "
            f"[{bounds.min_volume_change:+.0%}, {bounds.max_volume_change:+.0%}]"
        )
    if breaches and bounds.policy == "fail":
        raise ContractViolation(breaches)
    return DriftResult(figures=figures, breaches=breaches)
