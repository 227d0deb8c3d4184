"""One evaluation for every family: rating errors, top-k ranking metrics at several cut-offs,
beyond-accuracy metrics, per-user values with bootstrap intervals, slices, and paired comparisons.

Ranking is over every candidate by default (all training items minus the user's history), with
the top-`max(cutoffs)` list computed once per user in batches and the smaller cut-offs read off
it. Sampled negatives only when `EvaluationConfig.n_negatives` is set; their metrics are named
`sampled_<metric>_at_<k>` so they are never mistaken for full-ranking figures.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from scipy import special, stats

from recsys_models.base import Recommender
from recsys_models.columns import GENRES, ITEM_ID, RANK, RATING, SCORE, TIMESTAMP, USER_ID
from recsys_models.datasets.spec import Feedback
from recsys_models.features import ItemFeatures
from recsys_models.history import History, HistoryRecommendations
from recsys_models.interactions import IdVocabulary, known_rows
from recsys_models.metrics import (
    average_popularity,
    bootstrap_means,
    catalogue_coverage,
    exposure_gini,
    intra_list_diversity,
    novelty,
    percentile_interval,
    ranking_metrics,
    ranking_metrics_at,
    rating_errors,
)
from recsys_models.splitting import HELD_OUT_USERS

DEFAULT_CUTOFFS = (5, 10, 20, 50)
ACTIVITY_SLICES = ("cold", "light", "heavy")
POPULARITY_SLICES = ("head", "tail")
SAMPLED_PREFIX = "sampled_"
INTERVAL_METHOD = "percentile bootstrap over users"
COLD_ITEMS_PREFIX = "cold_items_"
COLD_ITEMS_METRICS = ("ndcg", "recall", "hit_rate")
COLD_ITEMS_CANDIDATES = "cold items only: every test item absent from train that has features"
_ILD_BLOCK = 4096  # lists per intra-list diversity block: bounds its (lists, k, features) array


class EvaluationConfig(BaseModel):
    """How a model is scored; the protocol fixes `relevance_threshold` (see `protocol_evaluation_config`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: PositiveInt = Field(default=10, description="Headline cut-off; slices are reported at it.")
    cutoffs: tuple[PositiveInt, ...] = Field(default=DEFAULT_CUTOFFS, description="Every cut-off reported.")
    relevance_threshold: float | None = Field(
        default=4.0, description="Test ratings at or above are relevant; None makes every test row relevant."
    )
    exclude_seen: bool = Field(
        default=True, description="False (repeat consumption): a user's training items stay candidates."
    )
    rating_metrics: bool = Field(default=True, description="False for implicit feedback: no RMSE without ratings.")
    n_negatives: PositiveInt | None = Field(
        default=None, description="Rank among this many sampled unseen items per user instead of all of them."
    )
    n_bootstrap: PositiveInt = Field(default=1000, description="Bootstrap resamples of users per interval.")
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0, description="Coverage of the intervals.")
    seed: NonNegativeInt = Field(default=0, description="Seed of the bootstrap and of negative sampling.")
    batch_size: PositiveInt = Field(default=2048, description="Users scored per batch.")
    activity_thresholds: tuple[PositiveInt, PositiveInt] = Field(
        default=(20, 100),  # MovieLens keeps users with >= 20 ratings: "cold" = at most that many in train
        description="Training interactions per user: cold <= first, light <= second, heavy above.",
    )
    head_share: float = Field(default=0.2, gt=0.0, lt=1.0, description="Share of items (by train count) in the head.")

    @model_validator(mode="after")
    def _thresholds_increase(self) -> "EvaluationConfig":
        if self.activity_thresholds[0] >= self.activity_thresholds[1]:
            raise ValueError(f"activity_thresholds must increase, got {self.activity_thresholds}")
        return self

    @property
    def all_cutoffs(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.cutoffs) | {self.k}))

    @property
    def prefix(self) -> str:
        """The label every ranking metric carries: empty for full ranking, `sampled_` otherwise."""
        return SAMPLED_PREFIX if self.n_negatives is not None else ""


def protocol_evaluation_config(
    protocol: str, k: int = 10, feedback: Feedback | None = None, **overrides: Any
) -> EvaluationConfig:
    """The evaluation a protocol of PROTOCOLS.md prescribes for a source's feedback: leave-one-out
    ranks with every test item relevant; the temporal protocols (and rolling backtests) with the
    source's relevance rule (MovieLens: test ratings >= 4). Implicit feedback and held-out users
    (scored from a history, which predicts no rating) have no rating metrics;
    with `exclude_seen: false` training items stay candidates."""
    feedback = feedback or Feedback()
    threshold = None if protocol == "leave-one-out" else feedback.relevance_threshold
    rating_metrics = feedback.kind == "explicit" and protocol != HELD_OUT_USERS  # P5 predicts no rating of a history
    settings = {"k": k, "relevance_threshold": threshold, "exclude_seen": feedback.exclude_seen,
                "rating_metrics": rating_metrics}  # fmt: skip
    return EvaluationConfig(**(settings | overrides))


@dataclass(frozen=True)
class RatingEvaluation:
    """RMSE/MAE with intervals, per-slice errors, and each user's errors."""

    summary: dict[str, Any]
    slices: dict[str, Any]
    per_user: pl.DataFrame


@dataclass(frozen=True)
class RankingEvaluation:
    """Ranking and beyond-accuracy metrics with intervals, slices, per-user values, the scored lists."""

    summary: dict[str, Any]
    slices: dict[str, Any]
    per_user: pl.DataFrame
    recommendations: pl.DataFrame


@dataclass(frozen=True)
class Evaluation:
    """Everything the evaluate stage writes: `metrics` (flat, plus nested `slices`) and the frames."""

    metrics: dict[str, Any]
    per_user: pl.DataFrame
    per_user_rating: pl.DataFrame
    recommendations: pl.DataFrame


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


def evaluate_model(
    model: Recommender,
    test: pl.DataFrame,
    config: EvaluationConfig | None = None,
    item_features: sp.csr_matrix | None = None,
    n_catalogue_items: int | None = None,
    histories: pl.DataFrame | None = None,
) -> Evaluation:
    """Rating and ranking evaluation of one model on one test part; see the functions it calls.
    With `histories` (P5), test users are ranked from them (`evaluate_ranking_from_histories`)."""
    config = config or EvaluationConfig()
    rating = evaluate_rating(model, test, config)
    if histories is None:
        ranking = evaluate_ranking(model, test, config, item_features, n_catalogue_items)
    else:
        ranking = evaluate_ranking_from_histories(model, histories, test, config, item_features)
    slices = {
        group: {
            key: (value | ranking.slices[group][key]) if isinstance(value, dict) else value
            for key, value in rating.slices[group].items()
        }
        for group in rating.slices
    }
    metrics = rating.summary | ranking.summary | {"slices": slices}
    return Evaluation(metrics, ranking.per_user, rating.per_user, ranking.recommendations)


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
            "rmse_ci_low": math.sqrt(mse["ci_low"]), "rmse_ci_high": math.sqrt(mse["ci_high"]),
            "mae_ci_low": mae["ci_low"], "mae_ci_high": mae["ci_high"],
            "n_eval_rows": int(members.sum()), "n_rating_users": n_users,
        }  # fmt: skip
        if group:
            slices[group][name] = result
        else:
            summary |= result
    per_user = pl.DataFrame(
        {USER_ID: model.users.ids[rating_users], "n_rows": weights[("", "", "mse")].astype(np.int64),
         "mse": values[("", "", "mse")], "mae": values[("", "", "mae")]},
        schema=per_user_schema,
    )  # fmt: skip
    return RatingEvaluation(summary, slices, per_user)


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
    hits = _hits(users, lists.items, np.sort(keys["user_idx"].to_numpy() * model.n_items + keys["item_idx"].to_numpy()),
                 model.n_items)  # fmt: skip
    n_history = histories.group_by(USER_ID).len().sort(USER_ID)["len"].to_numpy()[users]
    ranked = _RankedUsers(users, history_users.ids[users], n_history, lists.items, lists.scores, hits)
    facts = {"n_cold_users": int(relevant.filter(pl.col("user_idx") < 0)[USER_ID].n_unique()),
             "n_unknown_history_items": int(lists.unknown_items.sum()),
             "scored_from": "each user's history, given at scoring time (the user is absent from training)"}  # fmt: skip
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
    summary: dict[str, Any] = {
        "n_eval_users": int(users.size),
        "n_relevant_items": int(n_relevant.sum()),
        "n_unreachable_relevant_items": int(counts["n_unreachable"].sum()),
    } | facts | {
        "n_candidate_items": n_catalogue,
        "candidates": ("all unseen items" if config.exclude_seen else "all items, seen ones included (repeat consumption)")
        if config.n_negatives is None else (
            f"sampled: {config.n_negatives} unseen negatives + the relevant items (not comparable with full ranking)"
        ),  # fmt: skip
        "relevance_threshold": config.relevance_threshold,
        "interval": {"method": INTERVAL_METHOD, "resamples": config.n_bootstrap,
                     "confidence": config.confidence, "seed": config.seed},  # fmt: skip
    }
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
    candidate_idx = np.full(pairs.height, -1) if candidates is None else candidates.items.index_of(pairs[ITEM_ID])
    reachable = (user_idx >= 0) & (candidate_idx >= 0)
    users, n_relevant = np.unique(user_idx[reachable], return_counts=True)
    scored = model.scores_new_items  # the capability; with no candidate there is nothing to score
    depth = max(cutoffs)
    hits = np.zeros((users.size, depth), dtype=bool)
    if scored and users.size:
        keys = np.sort(user_idx[reachable] * n_candidates + candidate_idx[reachable])
        for start in range(0, users.size, config.batch_size):
            batch = users[start : start + config.batch_size]
            scores = torch.from_numpy(np.ascontiguousarray(model.score_new_items(batch, candidates), dtype=np.float32))
            top = torch.topk(scores, min(depth, n_candidates), dim=1).indices.numpy()
            hits[start : start + batch.size, : top.shape[1]] = _hits(batch, top, keys, n_candidates)
    per_user = {name: values for name, values in ranking_metrics_at(hits, n_relevant, cutoffs).items()
                if name.split("_at_")[0] in COLD_ITEMS_METRICS}  # fmt: skip
    if not scored:
        status = f"{model.family} cannot score items absent from training: zeros"
    else:
        status = "scored from item features" if users.size else "no evaluated user (no relevant cold item with features)"
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
    for (_, _, metric), interval in _intervals({("", "", name): values for name, values in per_user.items()},
                                               config).items():  # fmt: skip
        summary[prefix + metric] = interval["mean"]
        summary |= {f"{prefix}{metric}_{key}": interval[key] for key in ("stderr", "ci_low", "ci_high")}
    for name, values in _random_ranking_expectation(n_relevant, n_candidates, cutoffs).items():
        summary[f"{prefix}random_{name}"] = float(values.mean()) if values.size else float("nan")
    frame = pl.DataFrame({USER_ID: model.users.ids[users], "n_relevant": n_relevant.astype(np.int64)}).with_columns(
        pl.Series(name, values) for name, values in per_user.items()
    )
    return ColdItemEvaluation(summary, frame)


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
        metric, int(difference.size), float(a.mean()), float(b.mean()), float(difference.mean()),
        float(low[0]), float(high[0]), p_value, minimum_detectable_effect(difference),
    )  # fmt: skip


MDE_CONFIDENCE, MDE_POWER = 0.95, 0.8


def minimum_detectable_effect(difference: np.ndarray) -> float:
    """The paired minimum detectable effect of per-user differences (see `PairedComparison`)."""
    if difference.size < 2:
        return float("nan")
    z = stats.norm.ppf(1 - (1 - MDE_CONFIDENCE) / 2) + stats.norm.ppf(MDE_POWER)
    return float(z * difference.std(ddof=1) / math.sqrt(difference.size))


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
    matrix = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(len(vocabulary), values.size)
    )
    matrix.data[:] = 1.0  # a value listed twice for one item is still one indicator
    return matrix


# --- helpers -----------------------------------------------------------------------------------
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
    grouped = histories.sort(USER_ID, TIMESTAMP, ITEM_ID).group_by(USER_ID, maintain_order=True).agg(
        ITEM_ID, RATING, TIMESTAMP
    )  # fmt: skip
    parts = []
    for start in range(0, grouped.height, config.batch_size):
        rows = grouped.slice(start, config.batch_size).iter_rows(named=True)
        batch = [History(row[ITEM_ID], row[RATING], row[TIMESTAMP]) for row in rows]
        parts.append(model.recommend_from_history(batch, depth, config.exclude_seen))
    items = np.full((grouped.height, depth), -1, dtype=np.int64)
    scores = np.full((grouped.height, depth), -np.inf, dtype=np.float32)
    for start, part in zip(range(0, grouped.height, config.batch_size), parts, strict=True):
        rows, width = slice(start, start + part.items.shape[0]), part.items.shape[1]
        items[rows, :width] = np.where(np.isneginf(part.scores), -1, part.items)
        scores[rows, :width] = part.scores
    unknown = np.concatenate([np.zeros(0, np.int64)] + [part.unknown_items for part in parts])
    return HistoryRecommendations(items, scores, unknown)


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
    hits = _hits(users, top_items, np.sort(reachable_users * model.n_items + reachable_items), model.n_items)
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


def _hits(users: np.ndarray, top_items: np.ndarray, relevant_keys: np.ndarray, n_items: int) -> np.ndarray:
    """Which list slots hold a relevant item; `relevant_keys` are sorted user * n_items + item codes."""
    if relevant_keys.size == 0:
        return np.zeros(top_items.shape, dtype=bool)
    codes = users[:, None] * n_items + top_items
    position = np.minimum(np.searchsorted(relevant_keys, codes), relevant_keys.size - 1)
    return (top_items >= 0) & (relevant_keys[position] == codes)


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
        scores = torch.from_numpy(np.ascontiguousarray(model.score(batch), dtype=np.float32))
        scores[torch.from_numpy(~candidate)] = -torch.inf
        top = torch.topk(scores, min(depth, n_items), dim=1)
        items, values = top.indices.numpy(), top.values.numpy()
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
            blocks = [intra_list_diversity(top_items[start : start + _ILD_BLOCK, :k], features)
                      for start in range(0, top_items.shape[0], _ILD_BLOCK)]  # fmt: skip
            values[f"ild_at_{k}"] = np.concatenate(blocks) if blocks else np.empty(0)
    return values


def _intervals(
    values: dict[tuple[str, ...], np.ndarray],
    config: EvaluationConfig,
    weights: dict[tuple[str, ...], np.ndarray] | None = None,
) -> dict[tuple[str, ...], dict[str, float]]:
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
    counts, values = {}, {}
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
