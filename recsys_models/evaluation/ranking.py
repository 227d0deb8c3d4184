"""Top-k ranking of every evaluated user: full ranking over every candidate (all training items
minus the user's history) by default, the top-`max(cutoffs)` list computed once per user in
batches and the smaller cut-offs read off it; sampled negatives only when
`EvaluationConfig.n_negatives` is set (metrics named `sampled_<metric>_at_<k>`). Users are ranked
by id (`evaluate_ranking`) or, under P5, from a history given at scoring time
(`evaluate_ranking_from_histories`); one function turns either kind of lists into metrics."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_models.base import Recommender
from recsys_models.columns import GENRES, ITEM_ID, RANK, RATING, SCORE, TIMESTAMP, USER_ID
from recsys_models.evaluation.common import _activity_labels, _intervals, _slicers
from recsys_models.evaluation.config import ACTIVITY_SLICES, INTERVAL_METHOD, EvaluationConfig
from recsys_models.history import History, HistoryRecommendations
from recsys_models.interactions import IdVocabulary
from recsys_models.metrics import (
    average_popularity,
    catalogue_coverage,
    exposure_gini,
    intra_list_diversity,
    novelty,
    ranking_metrics,
    ranking_metrics_at,
)
from recsys_models.top_k import mark_hits, top_k

_ILD_BLOCK = 4096  # lists per intra-list diversity block: bounds its (lists, k, features) array


@dataclass(frozen=True)
class RankingEvaluation:
    """Ranking and beyond-accuracy metrics with intervals, slices, per-user values, the scored lists."""

    summary: dict[str, Any]
    slices: dict[str, Any]
    per_user: pl.DataFrame
    recommendations: pl.DataFrame


def evaluate_ranking(
    model: Recommender,
    test: pl.DataFrame,
    config: EvaluationConfig | None = None,
    item_features: sp.csr_matrix | None = None,
    n_catalogue_items: int | None = None,
) -> RankingEvaluation:
    """Top-k metrics (PROTOCOLS.md P2) at every cut-off, beyond-accuracy metrics, intervals, slices.

    Evaluated users have a relevant test row (rating >= threshold; every row when it is None) and
    at least one training interaction; users without one are counted as `n_cold_users`. Relevant
    items absent from train count in the denominators (`n_unreachable_relevant_items`).
    Candidates are every training item minus the user's history (train + valid).
    `n_catalogue_items` is the coverage and exposure denominator (default: the training items;
    leave-one-out uses every item of the data set). `item_features` (n_items, n_features), e.g.
    `item_feature_matrix`'s genres, enables intra-list diversity.
    """
    config = config or EvaluationConfig()
    n_catalogue = n_catalogue_items or model.n_items
    if n_catalogue < model.n_items:
        raise ValueError(f"n_catalogue_items {n_catalogue} is smaller than the model's {model.n_items} items")
    relevant = _relevant_pairs(test, config.relevance_threshold, model.users, model.items)
    known = relevant.filter(pl.col("user_idx") >= 0)
    users = _evaluated_user_keys(known)
    top_items, top_scores, hits = _top_lists(model, users, known.filter(pl.col("item_idx") >= 0), config)
    ranked = _RankedUsers(users, model.users.ids[users], np.diff(model.seen.indptr)[users], top_items, top_scores, hits)
    n_cold_users = int(relevant.filter(pl.col("user_idx") < 0)[USER_ID].n_unique())
    return _ranking_evaluation(model, known, ranked, config, item_features, n_catalogue, {"n_cold_users": n_cold_users})


def evaluate_ranking_from_histories(
    model: Recommender,
    histories: pl.DataFrame,
    test: pl.DataFrame,
    config: EvaluationConfig | None = None,
    item_features: sp.csr_matrix | None = None,
) -> RankingEvaluation:
    """P5: `evaluate_ranking` of users the model never saw, each scored from their history alone.

    `histories` holds the users' interactions given at scoring time (user_id, item_id, rating,
    timestamp); each user's list is `model.recommend_from_history` of them, so candidates are every
    training item minus that history (seen items stay with `exclude_seen` False). Evaluated users
    have a history and a relevant test row; a test user without a history is counted as
    `n_cold_users`, history items the model does not know as `n_unknown_history_items`. Activity
    slices count a user's given history. Full ranking only: sampled negatives do not apply.
    """
    config = config or EvaluationConfig()
    if config.n_negatives is not None:
        raise ValueError("users scored from their history are ranked over every candidate: n_negatives must be None")
    history_users = IdVocabulary.from_values(histories[USER_ID].to_numpy())
    relevant = _relevant_pairs(test, config.relevance_threshold, history_users, model.items)
    known = relevant.filter(pl.col("user_idx") >= 0)
    users = _evaluated_user_keys(known)
    lists = _history_lists(model, histories.filter(pl.col(USER_ID).is_in(history_users.ids[users])), config)
    keys = known.filter(pl.col("item_idx") >= 0)
    hits = mark_hits(
        users,
        lists.items,
        np.sort(keys["user_idx"].to_numpy() * model.n_items + keys["item_idx"].to_numpy()),
        model.n_items,
    )
    n_history = histories.group_by(USER_ID).len().sort(USER_ID)["len"].to_numpy()[users]
    ranked = _RankedUsers(users, history_users.ids[users], n_history, lists.items, lists.scores, hits)
    facts = {
        "n_cold_users": int(relevant.filter(pl.col("user_idx") < 0)[USER_ID].n_unique()),
        "n_unknown_history_items": int(lists.unknown_items.sum()),
        "scored_from": "each user's history, given at scoring time (the user is absent from training)",
    }
    return _ranking_evaluation(model, known, ranked, config, item_features, model.n_items, facts)


@dataclass(frozen=True)
class _RankedUsers:
    """The evaluated users of a ranking, row i one user: their key in the relevant pairs
    (`user_idx`), raw id, interactions they are known by, and their top lists and hits."""

    keys: np.ndarray
    ids: np.ndarray
    n_history: np.ndarray
    top_items: np.ndarray
    top_scores: np.ndarray
    hits: np.ndarray


def _ranking_evaluation(
    model: Recommender,
    relevant: pl.DataFrame,
    ranked: _RankedUsers,
    config: EvaluationConfig,
    item_features: sp.csr_matrix | None,
    n_catalogue: int,
    facts: dict[str, Any],
) -> RankingEvaluation:
    """The metrics, intervals, slices, per-user values and lists of ranked users; `relevant`
    holds their relevant pairs (item_idx -1: unreachable), `facts` joins the summary."""
    prefix, cutoffs, users = config.prefix, config.all_cutoffs, ranked.keys
    counts = (
        relevant.group_by("user_idx")
        .agg(pl.len().alias("n_relevant"), (pl.col("item_idx") < 0).sum().alias("n_unreachable"))
        .sort("user_idx")
    )
    n_relevant = counts["n_relevant"].to_numpy().astype(np.int64)
    top_items, hits = ranked.top_items, ranked.hits
    per_user = {prefix + name: values for name, values in ranking_metrics_at(hits, n_relevant, cutoffs).items()}
    summary: dict[str, Any] = (
        {
            "n_eval_users": int(users.size),
            "n_relevant_items": int(n_relevant.sum()),
            "n_unreachable_relevant_items": int(counts["n_unreachable"].sum()),
        }
        | facts
        | {
            "n_candidate_items": n_catalogue,
            "candidates": (
                "all unseen items" if config.exclude_seen else "all items, seen ones included (repeat consumption)"
            )
            if config.n_negatives is None
            else (
                f"sampled: {config.n_negatives} unseen negatives + the relevant items (not comparable with full ranking)"
            ),
            "relevance_threshold": config.relevance_threshold,
            "interval": {
                "method": INTERVAL_METHOD,
                "resamples": config.n_bootstrap,
                "confidence": config.confidence,
                "seed": config.seed,
            },
        }
    )
    if config.n_negatives is None:
        per_user |= _beyond_accuracy_per_user(model, top_items, cutoffs, item_features)
        for k in cutoffs:
            summary[f"coverage_at_{k}"] = catalogue_coverage(top_items[:, :k], n_catalogue) if users.size else 0.0
            summary[f"gini_at_{k}"] = exposure_gini(top_items[:, :k], n_catalogue)
    else:
        summary["n_negatives"] = config.n_negatives
    activity = _activity_labels(ranked.n_history, config)
    slices, columns = _ranking_slices(model, relevant, users, activity, per_user, top_items, hits, config)
    for (group, name, metric), interval in _intervals(columns, config).items():
        target = summary if not group else slices[group][name]
        target[metric] = interval["mean"]
        target |= {f"{metric}_{key}": interval[key] for key in ("stderr", "ci_low", "ci_high")}
    per_user_frame = pl.DataFrame(
        {
            USER_ID: ranked.ids,
            "n_relevant": n_relevant,
            "n_unreachable": counts["n_unreachable"].to_numpy(),
            "n_history": ranked.n_history,
            "activity": activity,
        }
    ).with_columns(pl.Series(name, values) for name, values in per_user.items())
    recommendations = _recommendation_frame(model.items, ranked.ids, top_items, ranked.top_scores)
    return RankingEvaluation(summary, slices, per_user_frame, recommendations)


def item_feature_matrix(items: pl.DataFrame, vocabulary: IdVocabulary, column: str = GENRES) -> sp.csr_matrix:
    """(len(vocabulary), n_values) indicator matrix of a list column (e.g. genres) of an items table.

    Columns are the distinct values in sorted order; items outside the vocabulary are ignored and
    vocabulary items without an entry get an empty row.
    """
    exploded = items.select(ITEM_ID, column).explode(column).drop_nulls()
    index = vocabulary.index_of(exploded[ITEM_ID].to_numpy())
    exploded = exploded.filter(pl.Series(index >= 0))
    values = np.sort(exploded[column].unique().to_numpy())
    rows = vocabulary.index_of(exploded[ITEM_ID].to_numpy())
    cols = np.searchsorted(values, exploded[column].to_numpy())
    matrix = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(len(vocabulary), values.size))
    matrix.data[:] = 1.0  # a value listed twice for one item is still one indicator
    return matrix


def _relevant_pairs(
    test: pl.DataFrame, threshold: float | None, users: IdVocabulary, items: IdVocabulary
) -> pl.DataFrame:
    """Distinct relevant (user, item) test pairs with their indices in `users` and `items` (-1 where unknown)."""
    positive = test if threshold is None else test.filter(pl.col(RATING) >= threshold)
    pairs = positive.select(USER_ID, ITEM_ID).unique().sort(USER_ID, ITEM_ID)
    return pairs.with_columns(
        pl.Series("user_idx", users.index_of(pairs[USER_ID].to_numpy())),
        pl.Series("item_idx", items.index_of(pairs[ITEM_ID].to_numpy())),
    )


def _evaluated_user_keys(known: pl.DataFrame) -> np.ndarray:
    """The distinct, sorted user keys of relevant pairs whose user is known."""
    return np.unique(known["user_idx"].to_numpy()).astype(np.int64)


def _history_lists(model: Recommender, histories: pl.DataFrame, config: EvaluationConfig) -> HistoryRecommendations:
    """Each user's top-`max(cutoffs)` from their history (users in id order, batches of
    `config.batch_size`); -1 marks an empty slot."""
    depth = max(config.all_cutoffs)
    grouped = (
        histories.sort(USER_ID, TIMESTAMP, ITEM_ID)
        .group_by(USER_ID, maintain_order=True)
        .agg(ITEM_ID, RATING, TIMESTAMP)
    )
    parts = []
    for start in range(0, grouped.height, config.batch_size):
        users = grouped.slice(start, config.batch_size).iter_rows(named=True)
        batch = [History(user[ITEM_ID], user[RATING], user[TIMESTAMP]) for user in users]
        parts.append(model.recommend_from_history(batch, depth, config.exclude_seen))
    items = np.full((grouped.height, depth), -1, dtype=np.int64)
    scores = np.full((grouped.height, depth), -np.inf, dtype=np.float32)
    for start, part in zip(range(0, grouped.height, config.batch_size), parts, strict=True):
        rows, width = slice(start, start + part.items.shape[0]), part.items.shape[1]
        items[rows, :width] = np.where(np.isneginf(part.scores), -1, part.items)
        scores[rows, :width] = part.scores
    unknown = np.concatenate([np.zeros(0, np.int64)] + [part.unknown_items for part in parts])
    return HistoryRecommendations(items, scores, unknown)


def _top_lists(
    model: Recommender, users: np.ndarray, reachable: pl.DataFrame, config: EvaluationConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's top-`max(cutoffs)` items and scores (full or sampled ranking), and which are hits."""
    depth = max(config.all_cutoffs)
    reachable_users, reachable_items = reachable["user_idx"].to_numpy(), reachable["item_idx"].to_numpy()
    if config.n_negatives is None:
        top_items, top_scores = _full_ranking(model, users, depth, config.batch_size, config.exclude_seen)
    else:
        reachable_matrix = sp.csr_matrix(
            (np.ones(reachable.height, dtype=np.float32), (reachable_users, reachable_items)),
            shape=(len(model.users), model.n_items),
        )
        top_items, top_scores = _sampled_ranking(model, users, reachable_matrix, depth, config)
    hits = mark_hits(users, top_items, np.sort(reachable_users * model.n_items + reachable_items), model.n_items)
    return top_items, top_scores, hits


def _ranking_slices(
    model: Recommender,
    relevant: pl.DataFrame,
    users: np.ndarray,
    activity: np.ndarray,
    per_user: dict[str, np.ndarray],
    top_items: np.ndarray,
    hits: np.ndarray,
    config: EvaluationConfig,
) -> tuple[dict[str, Any], dict[tuple[str, str, str], np.ndarray]]:
    """Slice counts by user activity and item popularity, and every per-user column whose interval
    is wanted, keyed (group, slice, metric): overall (group ""), and each slice's headline-k metrics."""
    head = _slicers(model, config)[2]
    headline = [name for name in per_user if name.endswith(f"_at_{config.k}")]
    columns = {("", "", name): values for name, values in per_user.items()}
    slices: dict[str, Any] = {
        "user_activity": {"thresholds": list(config.activity_thresholds)},
        "item_popularity": {"head_share": config.head_share, "n_head_items": int(head.sum())},
    }
    for name in ACTIVITY_SLICES:
        members = activity == name
        slices["user_activity"][name] = {"n_eval_users": int(members.sum())}
        columns |= {("user_activity", name, metric): np.where(members, per_user[metric], np.nan) for metric in headline}
    counts, values = _popularity_slices(
        relevant, users, top_items[:, : config.k], hits[:, : config.k], head, config.prefix
    )
    for name, counts_of_slice in counts.items():
        slices["item_popularity"][name] = counts_of_slice
        columns |= {("item_popularity", name, metric): column for metric, column in values[name].items()}
    return slices, columns


def _full_ranking(
    model: Recommender, users: np.ndarray, depth: int, batch_size: int, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`depth` items per user over every candidate (unseen ones unless `exclude_seen` is
    False), in batches; -1 marks an empty slot."""
    top_items = np.full((users.size, depth), -1, dtype=np.int64)
    top_scores = np.full((users.size, depth), -np.inf, dtype=np.float32)
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        items, scores = model.recommend(batch, depth, exclude_seen)
        top_items[start : start + batch.size, : items.shape[1]] = np.where(np.isneginf(scores), -1, items)
        top_scores[start : start + batch.size, : items.shape[1]] = scores
    return top_items, top_scores


def _sampled_ranking(
    model: Recommender, users: np.ndarray, relevant: sp.csr_matrix, depth: int, config: EvaluationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`depth` per user among its unseen relevant items plus `n_negatives` unseen non-relevant
    items drawn uniformly (seeded); -1 marks an empty slot."""
    rng = np.random.default_rng(config.seed)
    n_items = model.n_items
    top_items = np.full((users.size, depth), -1, dtype=np.int64)
    top_scores = np.full((users.size, depth), -np.inf, dtype=np.float32)
    draws = min(config.n_negatives or 0, n_items)
    for start in range(0, users.size, config.batch_size):
        batch = users[start : start + config.batch_size]
        rows = np.arange(batch.size)[:, None]
        keys = rng.random((batch.size, n_items), dtype=np.float32)
        blocked = (model.seen[batch] + relevant[batch]).tocoo()
        keys[blocked.row, blocked.col] = 2.0  # never drawn as a negative
        if draws < n_items:
            picks = np.argpartition(keys, draws - 1, axis=1)[:, :draws]
        else:
            picks = np.broadcast_to(np.arange(n_items), (batch.size, n_items))
        candidate = np.zeros((batch.size, n_items), dtype=bool)
        candidate[np.broadcast_to(rows, picks.shape), picks] = keys[rows, picks] < 2.0
        own, seen = relevant[batch].tocoo(), model.seen[batch].tocoo()
        candidate[own.row, own.col] = True
        candidate[seen.row, seen.col] = False  # as in full ranking, the history is never a candidate
        items, values = top_k(model.score(batch), depth, ~candidate)
        top_items[start : start + batch.size, : items.shape[1]] = np.where(np.isneginf(values), -1, items)
        top_scores[start : start + batch.size, : items.shape[1]] = values
    return top_items, top_scores


def _beyond_accuracy_per_user(
    model: Recommender, top_items: np.ndarray, cutoffs: tuple[int, ...], item_features: sp.csr_matrix | None
) -> dict[str, np.ndarray]:
    """Novelty, average recommended popularity and (with features) intra-list diversity per user."""
    users_per_item = np.bincount(model.seen.indices, minlength=model.n_items)
    share = np.maximum(users_per_item, 1) / max(len(model.users), 1)
    features = None if item_features is None else np.asarray(sp.csr_matrix(item_features).todense())
    values: dict[str, np.ndarray] = {}
    for k in cutoffs:
        values[f"novelty_at_{k}"] = novelty(top_items[:, :k], share)
        values[f"avg_popularity_at_{k}"] = average_popularity(top_items[:, :k], model.item_counts)
        if features is not None and k >= 2:
            blocks = [
                intra_list_diversity(top_items[start : start + _ILD_BLOCK, :k], features)
                for start in range(0, top_items.shape[0], _ILD_BLOCK)
            ]
            values[f"ild_at_{k}"] = np.concatenate(blocks) if blocks else np.empty(0)
    return values


def _popularity_slices(
    relevant: pl.DataFrame,
    users: np.ndarray,
    top_items: np.ndarray,
    hits: np.ndarray,
    head: np.ndarray,
    prefix: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Ranking metrics at k with relevance restricted to head or tail items (unreachable = tail).

    Returns, per slice, its counts (users with a relevant item in it, its share of the
    recommended slots) and its per-user metrics over all `users` (NaN for users not evaluated).
    """
    k = top_items.shape[1]
    item_idx = relevant["item_idx"].to_numpy()
    in_head = (item_idx >= 0) & head[np.maximum(item_idx, 0)]
    position = np.searchsorted(users, relevant["user_idx"].to_numpy())
    shown = top_items >= 0
    shown_head = shown & head[np.maximum(top_items, 0)]
    counts: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    for name, members, slots in (("head", in_head, shown_head), ("tail", ~in_head, shown & ~shown_head)):
        n_relevant = np.bincount(position[members], minlength=users.size)
        evaluated = n_relevant > 0
        share = float(slots.sum() / max(shown.sum(), 1))
        counts[name] = {"n_eval_users": int(evaluated.sum()), "recommended_share": share}
        values[name] = {}
        for metric, per_user in ranking_metrics(hits[evaluated] & slots[evaluated], n_relevant[evaluated]).items():
            full = np.full(users.size, np.nan)
            full[evaluated] = per_user
            values[name][f"{prefix}{metric}_at_{k}"] = full
    return counts, values


def _recommendation_frame(
    items: IdVocabulary, user_ids: np.ndarray, top_items: np.ndarray, top_scores: np.ndarray
) -> pl.DataFrame:
    """The scored lists in raw ids (row i of the lists is `user_ids[i]`): user_id, item_id, rank,
    score (empty slots left out)."""
    filled = top_items >= 0
    rows, ranks = np.nonzero(filled)
    return pl.DataFrame(
        {
            USER_ID: user_ids[rows],
            ITEM_ID: items.ids[top_items[filled]],
            RANK: (ranks + 1).astype(np.int32),
            SCORE: top_scores[filled],
        },
        schema={USER_ID: pl.Int64, ITEM_ID: pl.Int64, RANK: pl.Int32, SCORE: pl.Float32},
    )
