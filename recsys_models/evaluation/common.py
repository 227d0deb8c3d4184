"""What the rating, ranking and cold-item evaluations share: bootstrap intervals of per-user
columns and the activity and popularity slicers."""

import math

import numpy as np

from recsys_models.base import Recommender
from recsys_models.evaluation.config import EvaluationConfig
from recsys_models.metrics import bootstrap_means, percentile_interval

ColumnKey = tuple[str, str, str]
"""A per-user column whose interval is wanted: (slice group, slice, metric); ("", "", metric) overall."""


def _intervals(
    values: dict[ColumnKey, np.ndarray],
    config: EvaluationConfig,
    weights: dict[ColumnKey, np.ndarray] | None = None,
) -> dict[ColumnKey, dict[str, float]]:
    """Mean, standard error and bootstrap interval of every per-user column, from one resampling.

    All columns have one row per evaluated user; NaN marks a user outside a column's slice or
    without a value. One draw of resamples of all users serves every column (a slice's size then
    varies across resamples, as it would across samples of users). With `weights` (e.g. rows per
    user) the mean is sum(w v) / sum(w) and no standard error is given.
    """
    keys = list(values)
    if not keys:
        return {}
    matrix = np.column_stack([values[key] for key in keys]).astype(np.float64)
    weight_matrix = None if weights is None else np.column_stack([weights[key] for key in keys]).astype(np.float64)
    samples = bootstrap_means(matrix, weight_matrix, config.n_bootstrap, config.seed)
    low, high = percentile_interval(samples, config.confidence)
    nan = float("nan")
    result = {}
    for column, key in enumerate(keys):
        defined = np.isfinite(matrix[:, column])
        column_values = matrix[defined, column]
        if weight_matrix is None:
            mean = float(column_values.mean()) if column_values.size else nan
            stderr = float(column_values.std(ddof=1) / math.sqrt(column_values.size)) if column_values.size > 1 else nan
        else:
            column_weights = weight_matrix[defined, column]
            mean = float((column_weights * column_values).sum() / column_weights.sum()) if column_weights.sum() else nan
            stderr = nan
        result[key] = {"mean": mean, "stderr": stderr, "ci_low": float(low[column]), "ci_high": float(high[column])}
    return result


def _slicers(model: Recommender, config: EvaluationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activity label per user index, popularity label per item index, and the head-item mask.

    Activity counts a user's training interactions (train + valid); the head is the top
    ceil(head_share * n_items) items by training count, ties broken by item index.
    """
    user_slice = _activity_labels(np.diff(model.seen.indptr), config)
    head = np.zeros(model.n_items, dtype=bool)
    head[np.argsort(-model.item_counts, kind="stable")[: math.ceil(config.head_share * model.n_items)]] = True
    return user_slice, np.where(head, "head", "tail"), head


def _activity_labels(n_history: np.ndarray, config: EvaluationConfig) -> np.ndarray:
    """Each user's activity slice from the interactions they are known by: cold, light or heavy."""
    cold_max, light_max = config.activity_thresholds
    return np.where(n_history <= cold_max, "cold", np.where(n_history <= light_max, "light", "heavy"))
