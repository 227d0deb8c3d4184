"""The cold-item slice: ranking of the test items nobody interacted with in training, from their
features, against the expected value of a random order."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import special

from recsys_models.base import Recommender
from recsys_models.columns import ITEM_ID, RATING, USER_ID
from recsys_models.evaluation.common import _intervals
from recsys_models.evaluation.config import (
    COLD_ITEMS_CANDIDATES,
    COLD_ITEMS_METRICS,
    COLD_ITEMS_PREFIX,
    EvaluationConfig,
)
from recsys_models.features import ItemFeatures
from recsys_models.metrics import ranking_metrics_at
from recsys_models.top_k import mark_hits, top_k


@dataclass(frozen=True)
class ColdItemEvaluation:
    """The cold-item slice: flat `cold_items_*` metrics with intervals and counts, and per-user values."""

    summary: dict[str, Any]
    per_user: pl.DataFrame


def evaluate_cold_items(
    model: Recommender,
    test: pl.DataFrame,
    item_features: ItemFeatures | None,
    config: EvaluationConfig | None = None,
) -> ColdItemEvaluation:
    """Ranking of the items nobody rated in training (absent from the model's vocabulary).

    Cold items are the test items absent from train (P2: first rated after the cut-off; P4: no
    training row has them) that have at least one feature in `item_features` (the catalogue).
    Candidates are those cold items only, the same set for every user (no user has a history on
    them); relevant are each known user's test rows on them at or above the relevance threshold.
    Evaluated users are the known users with a relevant cold item. A family without
    `scores_new_items` cannot reach a cold item: it gets zeros and `cold_items_scored` 0, never a
    hidden row. `cold_items_random_*` is the expected value of a random order of the candidates,
    the floor a content model has to beat. Keys carry the `cold_items_` prefix.
    """
    config = config or EvaluationConfig()
    cutoffs, prefix = config.all_cutoffs, COLD_ITEMS_PREFIX
    candidates = _cold_candidates(model, test, item_features)
    positive = test if config.relevance_threshold is None else test.filter(pl.col(RATING) >= config.relevance_threshold)
    on_cold = positive.filter(~pl.Series(model.items.index_of(positive[ITEM_ID].to_numpy()) >= 0))
    pairs = on_cold.select(USER_ID, ITEM_ID).unique()
    user_idx = model.users.index_of(pairs[USER_ID].to_numpy())
    n_candidates = 0 if candidates is None else len(candidates.items)
    candidate_idx = (
        np.full(pairs.height, -1) if candidates is None else candidates.items.index_of(pairs[ITEM_ID].to_numpy())
    )
    reachable = (user_idx >= 0) & (candidate_idx >= 0)
    users, n_relevant = np.unique(user_idx[reachable], return_counts=True)
    scored = model.scores_new_items  # the capability; with no candidate there is nothing to score
    depth = max(cutoffs)
    hits = np.zeros((users.size, depth), dtype=bool)
    if scored and users.size and candidates is not None:
        keys = np.sort(user_idx[reachable] * n_candidates + candidate_idx[reachable])
        for start in range(0, users.size, config.batch_size):
            batch = users[start : start + config.batch_size]
            top = top_k(model.score_new_items(batch, candidates), depth)[0]
            hits[start : start + batch.size, : top.shape[1]] = mark_hits(batch, top, keys, n_candidates)
    per_user = {
        name: values
        for name, values in ranking_metrics_at(hits, n_relevant, cutoffs).items()
        if name.split("_at_")[0] in COLD_ITEMS_METRICS
    }
    if not scored:
        status = f"{model.family} cannot score items absent from training: zeros"
    else:
        status = (
            "scored from item features" if users.size else "no evaluated user (no relevant cold item with features)"
        )
    summary: dict[str, Any] = {
        prefix + "scored": int(scored),
        prefix + "status": status,
        prefix + "candidates": COLD_ITEMS_CANDIDATES,
        prefix + "n_candidate_items": n_candidates,
        prefix + "n_without_features": _n_cold_test_items(model, test) - n_candidates,
        prefix + "n_eval_users": int(users.size),
        prefix + "n_relevant_items": int(n_relevant.sum()),
        prefix + "n_cold_users": int(pl.Series(pairs[USER_ID].to_numpy()[user_idx < 0]).n_unique()),
    }
    for (_, _, metric), interval in _intervals(
        {("", "", name): values for name, values in per_user.items()}, config
    ).items():
        summary[prefix + metric] = interval["mean"]
        summary |= {f"{prefix}{metric}_{key}": interval[key] for key in ("stderr", "ci_low", "ci_high")}
    for name, values in _random_ranking_expectation(n_relevant, n_candidates, cutoffs).items():
        summary[f"{prefix}random_{name}"] = float(values.mean()) if values.size else float("nan")
    frame = pl.DataFrame({USER_ID: model.users.ids[users], "n_relevant": n_relevant.astype(np.int64)}).with_columns(
        pl.Series(name, values) for name, values in per_user.items()
    )
    return ColdItemEvaluation(summary, frame)


def _n_cold_test_items(model: Recommender, test: pl.DataFrame) -> int:
    """Distinct test items absent from the model's vocabulary."""
    ids = test[ITEM_ID].unique().to_numpy()
    return int((model.items.index_of(ids) < 0).sum())


def _cold_candidates(model: Recommender, test: pl.DataFrame, item_features: ItemFeatures | None) -> ItemFeatures | None:
    """Features of the test items absent from the model's vocabulary that have at least one feature."""
    if item_features is None:
        return None
    ids = test[ITEM_ID].unique().to_numpy()
    cold = item_features.subset(ids[model.items.index_of(ids) < 0])
    has_features = np.diff(cold.matrix.indptr) > 0
    return cold.subset(cold.items.ids[has_features])


def _random_ranking_expectation(
    n_relevant: np.ndarray, n_candidates: int, cutoffs: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Per-user expected NDCG, recall and hit rate at each cut-off of a uniformly random order of
    `n_candidates` items of which `n_relevant` are relevant (each slot holds a relevant one w.p. r/n)."""
    if n_candidates == 0 or n_relevant.size == 0:
        return {f"{name}_at_{k}": np.zeros(n_relevant.size) for k in cutoffs for name in COLD_ITEMS_METRICS}
    relevant = n_relevant.astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, max(cutoffs) + 2))
    result = {}
    for k in cutoffs:
        shown = min(k, n_candidates)
        ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
        all_candidates = np.full(relevant.size, float(n_candidates))
        # chance that no relevant item is shown: C(n - r, m) / C(n, m), in logs
        miss_all = np.exp(_log_choose(n_candidates - relevant, shown) - _log_choose(all_candidates, shown))
        result[f"ndcg_at_{k}"] = relevant / n_candidates * discount[:shown].sum() / ideal
        result[f"recall_at_{k}"] = np.full(relevant.size, shown / n_candidates)
        result[f"hit_rate_at_{k}"] = 1.0 - np.where(n_candidates - relevant >= shown, miss_all, 0.0)
    return result


def _log_choose(n: np.ndarray, k: int) -> np.ndarray:
    """log C(n, k), -inf where n < k."""
    valid = n >= k
    safe = np.where(valid, n, k)
    return np.where(valid, special.gammaln(safe + 1) - special.gammaln(k + 1) - special.gammaln(safe - k + 1), -np.inf)
