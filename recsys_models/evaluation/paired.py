"""Paired comparison of two models on the users both were scored on: difference, interval,
p-value and minimum detectable effect."""

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from recsys_models.columns import USER_ID
from recsys_models.metrics import bootstrap_means, percentile_interval


@dataclass(frozen=True)
class PairedComparison:
    """Mean of a - b over the users both were evaluated on, its interval, a p-value, and the
    minimum detectable effect: the smallest true difference this many paired users would reveal
    (two-sided test at 95%, power 80%: (z 0.975 + z 0.8) x sd(a - b) / sqrt(n))."""

    metric: str
    n_users: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    minimum_detectable_effect: float = float("nan")
    interval: str = "paired percentile bootstrap over users"
    test: str = "paired t-test"


def compare_paired(
    per_user_a: pl.DataFrame,
    per_user_b: pl.DataFrame,
    metric: str,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired comparison of two models' per-user values of `metric` on the users both were scored on.

    The difference is mean(a - b); its interval resamples users (seeded); the p-value is a paired
    t-test's (two-sided). Users missing from either frame, or without a value, are left out.
    """
    for name, frame in (("per_user_a", per_user_a), ("per_user_b", per_user_b)):
        if metric not in frame.columns:
            raise ValueError(f"{name} has no column {metric!r}; columns: {', '.join(frame.columns)}")
    paired = (
        per_user_a.select(USER_ID, pl.col(metric).alias("a"))
        .join(per_user_b.select(USER_ID, pl.col(metric).alias("b")), on=USER_ID, how="inner")
        .drop_nulls()
        .filter(pl.col("a").is_finite() & pl.col("b").is_finite())
    )
    a, b = paired["a"].to_numpy().astype(np.float64), paired["b"].to_numpy().astype(np.float64)
    difference = a - b
    if difference.size == 0:
        nan = float("nan")
        return PairedComparison(metric, 0, nan, nan, nan, nan, nan, nan)
    low, high = percentile_interval(bootstrap_means(difference[:, None], None, n_resamples, seed), confidence)
    if not difference.any():
        p_value = 1.0
    elif difference.size < 2:
        p_value = float("nan")
    else:
        p_value = float(stats.ttest_rel(a, b).pvalue)
    return PairedComparison(
        metric,
        int(difference.size),
        float(a.mean()),
        float(b.mean()),
        float(difference.mean()),
        float(low[0]),
        float(high[0]),
        p_value,
        minimum_detectable_effect(difference),
    )


MDE_CONFIDENCE, MDE_POWER = 0.95, 0.8


def minimum_detectable_effect(difference: np.ndarray) -> float:
    """The paired minimum detectable effect of per-user differences (see `PairedComparison`)."""
    if difference.size < 2:
        return float("nan")
    z = stats.norm.ppf(1 - (1 - MDE_CONFIDENCE) / 2) + stats.norm.ppf(MDE_POWER)
    return float(z * difference.std(ddof=1) / math.sqrt(difference.size))
