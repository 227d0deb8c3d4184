"""The evaluation module against a hand-computed case and an independent brute-force implementation;
sampled negatives, slices, paired comparisons, genre features and the evaluate stage."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from scipy import stats

from recsys_models.base import Recommender
from recsys_models.datasets.spec import ProtocolName
from recsys_models.evaluation import (
    EvaluationConfig,
    compare_paired,
    evaluate_model,
    evaluate_ranking,
    item_feature_matrix,
    protocol_evaluation_config,
)
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.splitting import SplitSettings, protocol_split
from stages.evaluate import compare_families, evaluate
from stages.layout import EvalDir
from stages.split import split
from stages.train import train

LOG3 = math.log2(3)


class _NoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixedScores(Recommender):
    """Scores (and predicted ratings) read from a fixed (n_users, n_items) table."""

    family = "fixed_scores"
    config_type = _NoConfig
    predicts_ratings = True

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self._table = np.asarray(table, dtype=np.float32)

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        if self._table.shape != (train.n_users, train.n_items):
            raise ValueError(f"table {self._table.shape} does not match {train.n_users} x {train.n_items}")

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self._table[self._check_users(user_indices)].copy()

    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        return self._table[user_indices, item_indices]

    def _state(self) -> dict[str, np.ndarray]:
        return {"table": self._table}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._table = state["table"]


def ratings(rows: list[tuple[int, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": list(range(len(rows))),
        }
    )


# users 1, 2, 3 (indices 0-2); items 10..50 (indices 0-4). Histories: 1 -> {10, 20}; 2 -> {10, 30, 40}; 3 -> {40, 50}
HAND_TRAIN = ratings([(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0), (2, 30, 2.0), (2, 40, 4.0), (3, 40, 3.0), (3, 50, 4.0)])
HAND_SCORES = np.array([[9, 8, 7, 6, 5], [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
# user 1: relevant 40 and 60 (60 unknown: unreachable), 30 not relevant; user 2: relevant 20;
# user 3: nothing relevant (not evaluated); user 9: unknown (cold)
HAND_TEST = ratings([(1, 40, 5.0), (1, 60, 4.0), (1, 30, 2.0), (2, 20, 4.0), (3, 30, 3.0), (9, 10, 5.0)])
HAND_CONFIG = EvaluationConfig(k=2, cutoffs=(1, 2, 3), activity_thresholds=(2, 3), head_share=0.4, n_bootstrap=200)


@pytest.fixture
def hand_model() -> FixedScores:
    return FixedScores(HAND_SCORES).fit(Interactions.from_frame(HAND_TRAIN))


def test_ranking_matches_the_hand_computed_case(hand_model: FixedScores) -> None:
    result = evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG)
    # lists: user 1 -> 30, 40, 50 (hit at 2; 2 relevant); user 2 -> 50, 20, <empty> (hit at 2; 1 relevant)
    assert result.recommendations.filter(pl.col("user_id") == 2)["item_id"].to_list() == [50, 20]
    summary = result.summary
    assert (
        summary["n_eval_users"],
        summary["n_relevant_items"],
        summary["n_unreachable_relevant_items"],
        summary["n_cold_users"],
    ) == (2, 3, 1, 1)
    user1_ndcg = (1 / LOG3) / (1 + 1 / LOG3)
    expected = {
        "ndcg_at_1": 0.0,
        "ndcg_at_2": (user1_ndcg + 1 / LOG3) / 2,
        "ndcg_at_3": (user1_ndcg + 1 / LOG3) / 2,
        "recall_at_2": 0.75,
        "precision_at_2": 0.5,
        "precision_at_3": 1 / 3,
        "hit_rate_at_1": 0.0,
        "hit_rate_at_2": 1.0,
        "map_at_2": (0.25 + 0.5) / 2,
        "mrr_at_3": 0.5,
        "coverage_at_1": 0.4,
        "coverage_at_2": 0.8,
        "coverage_at_3": 0.8,
        "gini_at_1": 0.6,
        "novelty_at_2": ((LOG3 + math.log2(1.5)) / 2 + LOG3) / 2,  # shares: 10, 40 -> 2/3; 20, 30, 50 -> 1/3
        "avg_popularity_at_3": (4 / 3 + 1) / 2,  # user 2's empty slot is no item
    }
    for name, value in expected.items():
        assert summary[name] == pytest.approx(value), name
    assert summary["ndcg_at_2_ci_low"] <= summary["ndcg_at_2"] <= summary["ndcg_at_2_ci_high"]
    per_user = result.per_user.sort("user_id")
    assert per_user["user_id"].to_list() == [1, 2]
    assert per_user["ndcg_at_2"].to_list() == pytest.approx([user1_ndcg, 1 / LOG3])
    assert per_user["activity"].to_list() == ["cold", "light"]  # histories of 2 and 3, thresholds (2, 3)


def test_slices_match_the_hand_computed_case(hand_model: FixedScores) -> None:
    slices = evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG).slices
    activity = slices["user_activity"]
    assert activity["cold"]["n_eval_users"] == 1 and activity["light"]["n_eval_users"] == 1
    assert activity["cold"]["ndcg_at_2"] == pytest.approx((1 / LOG3) / (1 + 1 / LOG3))
    assert activity["heavy"]["n_eval_users"] == 0 and math.isnan(activity["heavy"]["ndcg_at_2"])
    popularity = slices["item_popularity"]
    assert popularity["n_head_items"] == 2  # ceil(0.4 * 5): items 10 and 40 (two ratings each)
    # head: only user 1 has a relevant head item (40, hit at rank 2)
    assert popularity["head"]["n_eval_users"] == 1 and popularity["head"]["ndcg_at_2"] == pytest.approx(1 / LOG3)
    # tail: user 1's 60 (unreachable, a miss) and user 2's 20 (hit at rank 2)
    assert popularity["tail"]["n_eval_users"] == 2 and popularity["tail"]["ndcg_at_2"] == pytest.approx(1 / LOG3 / 2)
    assert popularity["head"]["recommended_share"] == pytest.approx(0.25)  # 40 of 30, 40, 50, 20


def test_rating_metrics_match_the_hand_computed_case(hand_model: FixedScores) -> None:
    evaluation = evaluate_model(hand_model, HAND_TEST, HAND_CONFIG)
    metrics = evaluation.metrics
    # known rows: (1, 40) error 1, (1, 30) error 5, (2, 20) error -2, (3, 30) error 0
    assert (metrics["n_eval_rows"], metrics["n_cold_rows"]) == (4, 2)
    assert metrics["rmse"] == pytest.approx(math.sqrt(7.5)) and metrics["mae"] == pytest.approx(2.0)
    assert metrics["rmse_ci_low"] <= metrics["rmse"] <= metrics["rmse_ci_high"]
    per_user = evaluation.per_user_rating.sort("user_id")
    assert per_user.rows() == [(1, 2, 13.0, 3.0), (2, 1, 4.0, 2.0), (3, 1, 0.0, 0.0)]
    slices = metrics["slices"]
    assert slices["user_activity"]["cold"]["rmse"] == pytest.approx(math.sqrt(26 / 3))  # users 1 and 3
    assert slices["user_activity"]["light"]["rmse"] == pytest.approx(2.0)
    assert slices["item_popularity"]["head"]["rmse"] == pytest.approx(1.0)  # item 40
    assert slices["item_popularity"]["tail"]["rmse"] == pytest.approx(math.sqrt(29 / 3))
    assert slices["user_activity"]["cold"]["ndcg_at_2"] == pytest.approx((1 / LOG3) / (1 + 1 / LOG3))


def test_relevance_threshold_none_makes_every_test_row_relevant(hand_model: FixedScores) -> None:
    config = protocol_evaluation_config("leave-one-out", k=2, cutoffs=(1, 2, 3), n_bootstrap=50)
    assert config.relevance_threshold is None
    summary = evaluate_ranking(hand_model, HAND_TEST, config).summary
    assert summary["n_eval_users"] == 3 and summary["n_relevant_items"] == 5  # user 3's 30 now counts


def test_coverage_uses_the_given_catalogue(hand_model: FixedScores) -> None:
    summary = evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG, n_catalogue_items=8).summary
    assert summary["coverage_at_2"] == pytest.approx(4 / 8)
    with pytest.raises(ValueError, match="smaller"):
        evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG, n_catalogue_items=3)


# --- against an independent brute-force implementation --------------------------------------------
def brute_force(
    train: pl.DataFrame, test: pl.DataFrame, table: np.ndarray, users: list, items: list, cutoffs: tuple[int, ...]
) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """Per-user metrics by the PROTOCOLS.md definitions, one user at a time in plain Python."""
    history = {user: set(train.filter(pl.col("user_id") == user)["item_id"]) for user in users}
    users_of_item = {item: sum(item in seen for seen in history.values()) for item in items}
    interactions = {item: train.filter(pl.col("item_id") == item).height for item in items}
    results: dict[int, dict[str, float]] = {}
    lists: dict[int, list[list[Any]]] = {k: [] for k in cutoffs}
    for user in sorted(set(test.filter(pl.col("rating") >= 4.0)["user_id"])):
        if user not in history:
            continue
        relevant = set(test.filter((pl.col("user_id") == user) & (pl.col("rating") >= 4.0))["item_id"])
        row = users.index(user)
        ranked = sorted(
            (item for item in items if item not in history[user]), key=lambda item: -table[row, items.index(item)]
        )
        values: dict[str, Any] = {}
        for k in cutoffs:
            top = ranked[:k]
            lists[k].append(top)
            gains = [item in relevant for item in top] + [False] * (k - len(top))
            dcg = sum(1 / math.log2(rank + 2) for rank, gain in enumerate(gains) if gain)
            ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
            precisions = [sum(gains[: rank + 1]) / (rank + 1) for rank in range(k) if gains[rank]]
            values |= {
                f"ndcg_at_{k}": dcg / ideal,
                f"recall_at_{k}": sum(gains) / len(relevant),
                f"precision_at_{k}": sum(gains) / k,
                f"hit_rate_at_{k}": float(any(gains)),
                f"map_at_{k}": sum(precisions) / min(len(relevant), k),
                f"mrr_at_{k}": next((1 / (rank + 1) for rank in range(k) if gains[rank]), 0.0),
                f"novelty_at_{k}": np.mean([-math.log2(users_of_item[i] / len(users)) for i in top])
                if top
                else math.nan,
                f"avg_popularity_at_{k}": np.mean([interactions[i] for i in top]) if top else math.nan,
            }
        results[user] = values
    catalogue = {}
    for k in cutoffs:
        shown = [item for top in lists[k] for item in top]
        exposure = sorted(shown.count(item) for item in items)
        n = len(items)
        catalogue[f"coverage_at_{k}"] = len(set(shown)) / n
        catalogue[f"gini_at_{k}"] = (
            sum((2 * (i + 1) - n - 1) * x for i, x in enumerate(exposure)) / (n * sum(exposure)) if shown else math.nan
        )
    return results, catalogue


@settings(max_examples=25, deadline=None)
@given(n_users=st.integers(2, 12), n_items=st.integers(2, 15), density=st.floats(0.1, 0.6), seed=st.integers(0, 10_000))
def test_evaluation_equals_a_brute_force_implementation(n_users: int, n_items: int, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    observed = rng.random((n_users + 2, n_items + 2)) < density  # two extra users and items occur only in test
    stars = rng.integers(1, 6, observed.shape).astype(float)
    in_train = observed & (rng.random(observed.shape) < 0.6)
    in_train[n_users:, :] = False
    in_train[:, n_items:] = False
    in_train[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # every train user has a rating
    in_train[0, :n_items] = True  # ... and every train item; user 0 has seen everything (empty list)
    train = ratings([(u + 1, i + 101, stars[u, i]) for u, i in zip(*np.nonzero(in_train), strict=True)])
    test = ratings([(u + 1, i + 101, stars[u, i]) for u, i in zip(*np.nonzero(observed & ~in_train), strict=True)])
    users, items = sorted(set(train["user_id"])), sorted(set(train["item_id"]))
    table = rng.random((len(users), len(items))).astype(np.float32)  # the precision the model scores in
    model = FixedScores(table).fit(Interactions.from_frame(train))
    cutoffs = (1, 3, 5, 20)
    result = evaluate_ranking(model, test, EvaluationConfig(k=3, cutoffs=cutoffs, n_bootstrap=20))
    expected, catalogue = brute_force(train, test, table, users, items, cutoffs)
    per_user = {row["user_id"]: row for row in result.per_user.iter_rows(named=True)}
    assert set(per_user) == set(expected)
    for user, values in expected.items():
        for name, value in values.items():
            assert per_user[user][name] == pytest.approx(value, nan_ok=True), (user, name)
    for name, value in catalogue.items():
        assert result.summary[name] == pytest.approx(value, nan_ok=True), name


# --- sampled negatives -------------------------------------------------------------------------------
def test_sampled_metrics_are_labelled_and_equal_full_ranking_when_every_item_is_drawn(hand_model: FixedScores) -> None:
    full = evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG)
    sampled = evaluate_ranking(hand_model, HAND_TEST, HAND_CONFIG.model_copy(update={"n_negatives": 100}))
    assert "ndcg_at_2" not in sampled.summary and "coverage_at_2" not in sampled.summary
    assert "sampled" in sampled.summary["candidates"] and sampled.summary["n_negatives"] == 100
    for name in ("ndcg_at_2", "recall_at_3", "map_at_3"):
        assert sampled.summary[f"sampled_{name}"] == pytest.approx(full.summary[name])
    assert "sampled_ndcg_at_2" in sampled.per_user.columns
    assert "sampled_ndcg_at_2" in sampled.slices["user_activity"]["cold"]


def test_sampled_lists_hold_only_relevant_and_drawn_unseen_items() -> None:
    rng = np.random.default_rng(4)
    train = ratings([(u, i, 3.0) for u in range(1, 31) for i in range(1, 41) if rng.random() < 0.3])
    test = ratings([(u, i, 5.0) for u in range(1, 31) for i in range(1, 41) if rng.random() < 0.05])
    model = FixedScores(rng.random((train["user_id"].n_unique(), train["item_id"].n_unique()))).fit(
        Interactions.from_frame(train)
    )
    config = EvaluationConfig(k=10, cutoffs=(10,), n_negatives=3, n_bootstrap=20, seed=7)
    result = evaluate_ranking(model, test, config)
    for user, listed in result.recommendations.group_by("user_id"):
        seen = set(train.filter(pl.col("user_id") == user[0])["item_id"])
        relevant = set(test.filter(pl.col("user_id") == user[0])["item_id"])
        assert not set(listed["item_id"]) & seen
        assert len(set(listed["item_id"]) - relevant) <= 3
    again = evaluate_ranking(model, test, config)
    assert again.recommendations.equals(result.recommendations)  # seeded


# --- paired comparison ---------------------------------------------------------------------------------
def test_compare_paired_hand_computed() -> None:
    a = pl.DataFrame({"user_id": [1, 2, 3, 4], "ndcg_at_10": [0.5, 0.2, 0.9, 0.7]})
    b = pl.DataFrame({"user_id": [3, 1, 2], "ndcg_at_10": [0.6, 0.4, 0.2]})  # user 4 only in a: left out
    result = compare_paired(a, b, "ndcg_at_10")
    differences = np.array([0.1, 0.0, 0.3])
    t = differences.mean() / (differences.std(ddof=1) / math.sqrt(3))
    assert result.n_users == 3 and result.difference == pytest.approx(0.4 / 3)
    assert result.mean_a == pytest.approx(1.6 / 3) and result.mean_b == pytest.approx(1.2 / 3)
    assert result.p_value == pytest.approx(2 * stats.t.sf(t, df=2))
    assert 0.0 <= result.ci_low <= result.difference <= result.ci_high <= 0.3 + 1e-12
    same = compare_paired(a, a, "ndcg_at_10")
    assert same.difference == 0.0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="no column"):
        compare_paired(a, b, "recall_at_10")


# --- item features and the stage -----------------------------------------------------------------------
def test_item_feature_matrix_from_a_genre_list_column() -> None:
    items = pl.DataFrame({"item_id": [20, 10, 99], "genres": [["Drama", "Comedy"], [], ["Drama"]]})
    matrix = item_feature_matrix(items, IdVocabulary(np.array([10, 20, 30])))
    np.testing.assert_array_equal(matrix.toarray(), [[0, 0], [1, 1], [0, 0]])  # columns: Comedy, Drama


def test_evaluate_stage_on_a_leave_one_out_split_with_genres(tiny_ratings: pl.DataFrame, tmp_path: Path) -> None:
    validated = tmp_path / "validate"
    validated.mkdir()
    tiny_ratings.write_parquet(validated / "ratings.parquet")
    pl.DataFrame({"item_id": [10, 20, 30, 40, 50], "genres": [["A"], ["A", "B"], ["B"], [], ["C"]]}).write_parquet(
        validated / "items.parquet"
    )
    split_dir = split(validated, tmp_path / "split", SplitSettings(protocol="leave-one-out"))
    for family in ("popularity", "biased_mf"):
        config = {"epochs": 2, "n_factors": 2} if family == "biased_mf" else None
        train(split_dir, tmp_path / "train" / family, family, config)
        evaluate(
            split_dir,
            tmp_path / "train" / family,
            tmp_path / "evaluate" / family,
            k=2,
            items_dir=validated,
            overrides={"cutoffs": (1, 2), "n_bootstrap": 50},
        )
    metrics = EvalDir(tmp_path / "evaluate" / "popularity").metrics()
    assert metrics["protocol"] == "leave-one-out" and metrics["relevance_threshold"] is None
    assert metrics["n_eval_users"] == 3  # users 1-3 have a held-out last item; user 4 stays in train
    assert metrics["n_candidate_items"] == 5 and "ild_at_2" in metrics and "ild_at_1" not in metrics
    assert {"n_eval_users", "ndcg_at_2", "hit_rate_at_2_ci_high"} <= set(metrics)
    manifest = json.loads((tmp_path / "evaluate" / "popularity" / "manifest.json").read_text())
    assert manifest["parameters"]["item_features"] == "genres"
    assert {"per_user.parquet", "per_user_rating.parquet", "recommendations.parquet"} <= set(manifest["outputs"])
    evaluated = tmp_path / "evaluate"
    assert compare_families(evaluated / "biased_mf", evaluated / "popularity", "ndcg_at_2").n_users == 3
    # popularity predicts no ratings: its per-user rating file is empty, so nobody is paired
    assert compare_families(evaluated / "biased_mf", evaluated / "popularity", "mse").n_users == 0


# --- the protocols on real MovieLens (skipped without ../shared/datasets) ----------------------------
@pytest.fixture(scope="module")
def movielens_small(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    from data_contracts import validate_ratings
    from recsys_models.datasets import load_dataset

    raw = load_dataset("ml-latest-small", datasets_dir, tmp_path_factory.mktemp("downloads"))
    return validate_ratings(raw.ratings, raw.items, raw.scale).valid


def _popularity_on(ratings_frame: pl.DataFrame, protocol: ProtocolName) -> dict[str, Any]:
    from recsys_models.popularity import Popularity

    parts = protocol_split(ratings_frame, SplitSettings(protocol=protocol))
    full = Interactions.from_frame(parts.history)
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    model = Popularity().fit(
        Interactions.from_frame(parts.train, full.users, full.items),
        Interactions.from_frame(parts.valid, full.users, full.items),
    )
    catalogue = pl.concat([parts.history, parts.test])["item_id"].n_unique() if protocol == "leave-one-out" else None
    config = protocol_evaluation_config(protocol, n_bootstrap=200)
    return evaluate_model(model, parts.test, config, n_catalogue_items=catalogue).metrics


@pytest.mark.real_data
def test_p4_counts_and_popularity_match_the_peer_figures(movielens_small: pl.DataFrame) -> None:
    metrics = _popularity_on(movielens_small, "temporal-user")
    assert (metrics["n_eval_users"], metrics["n_eval_rows"]) == (592, 18_715)  # PROTOCOLS.md, P4
    assert metrics["ndcg_at_10"] == pytest.approx(0.076, abs=0.003)
    assert metrics["hit_rate_at_10"] == pytest.approx(0.324, abs=0.005)
    assert metrics["ndcg_at_10_ci_low"] < 0.076 < metrics["ndcg_at_10_ci_high"]


@pytest.mark.real_data
def test_p3_counts_and_popularity_match_the_peer_figures(movielens_small: pl.DataFrame) -> None:
    metrics = _popularity_on(movielens_small, "leave-one-out")
    assert metrics["n_eval_users"] == 610 and metrics["relevance_threshold"] is None
    assert metrics["hit_rate_at_10"] == pytest.approx(0.043, abs=0.003)
    assert metrics["ndcg_at_10"] == pytest.approx(0.019, abs=0.002)
    assert metrics["n_candidate_items"] == movielens_small["item_id"].n_unique()
