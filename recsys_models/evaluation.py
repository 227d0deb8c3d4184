"""One evaluation for every family: rating errors (P1) and full-ranking top-k metrics (P2)."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recsys_models.base import Recommender
from recsys_models.columns import ITEM_ID, RANK, RATING, SCORE, USER_ID
from recsys_models.interactions import known_rows
from recsys_models.metrics import catalogue_coverage, mean_with_interval, ranking_metrics, rating_errors


@dataclass(frozen=True)
class RankingEvaluation:
    """Headline metrics with intervals, per-user values and the lists that were scored."""

    k: int
    summary: dict[str, Any]
    per_user: pl.DataFrame
    recommendations: pl.DataFrame


def evaluate_rating(model: Recommender, test: pl.DataFrame) -> dict[str, Any]:
    """RMSE/MAE on test rows whose user and item occur in train; the others are counted as cold."""
    known = known_rows(test, model.users, model.items)
    scored = test.filter(known)
    summary: dict[str, Any] = {"n_eval_rows": scored.height, "n_cold_rows": test.height - scored.height}
    if not model.predicts_ratings:
        return summary
    predicted = model.predict(
        model.users.index_of(scored[USER_ID].to_numpy()), model.items.index_of(scored[ITEM_ID].to_numpy())
    )
    return summary | rating_errors(predicted, scored[RATING].to_numpy())


def evaluate_ranking(
    model: Recommender,
    test: pl.DataFrame,
    k: int = 10,
    relevance_threshold: float | None = 4.0,
    batch_size: int = 2048,
) -> RankingEvaluation:
    """Full-ranking top-k metrics (PROTOCOLS.md P2): candidates are all train items minus the user's own.

    Evaluated users have a relevant test rating (>= threshold; every test row when the threshold
    is None, as in leave-one-out) and at least one train rating. Relevant items include those
    absent from train; they count in the denominators.
    """
    positive = test if relevance_threshold is None else test.filter(pl.col(RATING) >= relevance_threshold)
    relevant = positive.select(USER_ID, ITEM_ID).unique()
    user_idx_all = model.users.index_of(relevant[USER_ID].to_numpy())
    relevant = relevant.with_columns(
        pl.Series("user_idx", user_idx_all), pl.Series("item_idx", model.items.index_of(relevant[ITEM_ID].to_numpy()))
    ).filter(pl.col("user_idx") >= 0)
    per_user_counts = relevant.group_by("user_idx").agg(
        pl.len().alias("n_relevant"), (pl.col("item_idx") < 0).sum().alias("n_unreachable")
    ).sort("user_idx")
    users = per_user_counts["user_idx"].to_numpy()
    n_relevant = per_user_counts["n_relevant"].to_numpy()

    reachable = relevant.filter(pl.col("item_idx") >= 0)
    relevant_keys = np.sort(reachable["user_idx"].to_numpy() * model.n_items + reachable["item_idx"].to_numpy())
    top_items = np.empty((users.size, min(k, model.n_items)), dtype=np.int64)
    top_scores = np.empty(top_items.shape, dtype=np.float32)
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        top_items[start : start + batch.size], top_scores[start : start + batch.size] = model.recommend(batch, k)
    hits = np.isin(users[:, None] * model.n_items + top_items, relevant_keys)
    if top_items.shape[1] < k:  # fewer candidates than k: the missing ranks are misses
        hits = np.pad(hits, ((0, 0), (0, k - top_items.shape[1])))
    per_user = ranking_metrics(hits, n_relevant)

    summary: dict[str, Any] = {
        "n_eval_users": int(users.size),
        "n_relevant_items": int(n_relevant.sum()),
        "n_unreachable_relevant_items": int(per_user_counts["n_unreachable"].sum()),
        f"coverage_at_{k}": catalogue_coverage(top_items, model.n_items) if users.size else 0.0,
    }
    for name, values in per_user.items():
        interval = mean_with_interval(values)
        summary[f"{name}_at_{k}"] = interval["mean"]
        summary[f"{name}_at_{k}_stderr"] = interval["stderr"]
        summary[f"{name}_at_{k}_ci_low"] = interval["ci_low"]
        summary[f"{name}_at_{k}_ci_high"] = interval["ci_high"]

    raw_users = model.users.ids[users]
    per_user_frame = pl.DataFrame({USER_ID: raw_users, "n_relevant": n_relevant}).with_columns(
        pl.Series(f"{name}_at_{k}", values) for name, values in per_user.items()
    )
    width = top_items.shape[1]
    recommendations = pl.DataFrame(
        {
            USER_ID: np.repeat(raw_users, width),
            ITEM_ID: model.items.ids[top_items.ravel()],
            RANK: np.tile(np.arange(1, width + 1, dtype=np.int32), users.size),
            SCORE: top_scores.ravel(),
        }
    )
    return RankingEvaluation(k=k, summary=summary, per_user=per_user_frame, recommendations=recommendations)
