"""Rating errors (RMSE, MAE) on the test rows whose user and item were trained on, with intervals
over users and slices."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recsys_models.base import Recommender
from recsys_models.columns import ITEM_ID, RATING, USER_ID
from recsys_models.evaluation.common import _intervals, _slicers
from recsys_models.evaluation.config import ACTIVITY_SLICES, POPULARITY_SLICES, EvaluationConfig
from recsys_models.interactions import known_rows
from recsys_models.metrics import rating_errors


@dataclass(frozen=True)
class RatingEvaluation:
    """RMSE/MAE with intervals, per-slice errors, and each user's errors."""

    summary: dict[str, Any]
    slices: dict[str, Any]
    per_user: pl.DataFrame


def evaluate_rating(model: Recommender, test: pl.DataFrame, config: EvaluationConfig | None = None) -> RatingEvaluation:
    """RMSE/MAE on test rows whose user and item occur in train (the others are counted as cold).

    Intervals resample users (a user's rows stay together); slices split rows by the user's
    training activity and the item's popularity. A family that does not predict ratings gets
    counts only, never invented numbers.
    """
    config = config or EvaluationConfig()
    scored = test.filter(known_rows(test, model.users, model.items))
    summary: dict[str, Any] = {"n_eval_rows": scored.height, "n_cold_rows": test.height - scored.height}
    user_slice, item_slice, head = _slicers(model, config)
    slices: dict[str, dict[str, Any]] = {
        "user_activity": {"thresholds": list(config.activity_thresholds)} | {name: {} for name in ACTIVITY_SLICES},
        "item_popularity": {"head_share": config.head_share, "n_head_items": int(head.sum())}
        | {name: {} for name in POPULARITY_SLICES},
    }
    per_user_schema = {USER_ID: pl.Int64, "n_rows": pl.Int64, "mse": pl.Float64, "mae": pl.Float64}
    if not model.predicts_ratings or not config.rating_metrics:
        return RatingEvaluation(summary, slices, pl.DataFrame(schema=per_user_schema))
    users = model.users.index_of(scored[USER_ID].to_numpy())
    items = model.items.index_of(scored[ITEM_ID].to_numpy())
    predicted, actual = model.predict(users, items), scored[RATING].to_numpy()
    error = predicted.astype(np.float64) - actual.astype(np.float64)
    rating_users, position = np.unique(users, return_inverse=True)
    scopes = {("", ""): np.ones(users.size, dtype=bool)}
    scopes |= {("user_activity", name): user_slice[users] == name for name in ACTIVITY_SLICES}
    scopes |= {("item_popularity", name): item_slice[items] == name for name in POPULARITY_SLICES}
    values, weights, rows_in = {}, {}, {}
    for scope, members in scopes.items():  # per-user mean errors, weighted by rows, for the intervals
        n = np.bincount(position[members], minlength=rating_users.size).astype(np.float64)
        for name, per_row in (("mse", error**2), ("mae", np.abs(error))):
            total = np.bincount(position[members], weights=per_row[members], minlength=rating_users.size)
            values[scope + (name,)] = np.divide(total, n, out=np.full(n.size, np.nan), where=n > 0)
            weights[scope + (name,)] = n
        rows_in[scope] = (members, int((n > 0).sum()))
    intervals = _intervals(values, config, weights)
    for (group, name), (members, n_users) in rows_in.items():
        mse, mae = intervals[(group, name, "mse")], intervals[(group, name, "mae")]
        result = rating_errors(predicted[members], actual[members]) | {
            "rmse_ci_low": math.sqrt(mse["ci_low"]),
            "rmse_ci_high": math.sqrt(mse["ci_high"]),
            "mae_ci_low": mae["ci_low"],
            "mae_ci_high": mae["ci_high"],
            "n_eval_rows": int(members.sum()),
            "n_rating_users": n_users,
        }
        if group:
            slices[group][name] = result
        else:
            summary |= result
    per_user = pl.DataFrame(
        {
            USER_ID: model.users.ids[rating_users],
            "n_rows": weights[("", "", "mse")].astype(np.int64),
            "mse": values[("", "", "mse")],
            "mae": values[("", "", "mae")],
        },
        schema=per_user_schema,
    )
    return RatingEvaluation(summary, slices, per_user)
