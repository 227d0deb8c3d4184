"""Ranking and rating metrics against hand-computed cases and a brute-force reference."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_ranking_metrics_match_hand_computed_values() -> None:
    hits = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=bool)
    n_relevant = np.array([2, 5, 4])  # user 3 has 3 relevant items no model can reach
    metrics = ranking_metrics(hits, n_relevant)
    ideal_two = 1 + 1 / math.log2(3)
    ideal_three = ideal_two + 0.5
    np.testing.assert_allclose(metrics["ndcg"], [1.5 / ideal_two, 0.0, (1 / math.log2(3)) / ideal_three])
    np.testing.assert_allclose(metrics["recall"], [1.0, 0.0, 0.25])
    np.testing.assert_allclose(metrics["precision"], [2 / 3, 0.0, 1 / 3])
    np.testing.assert_allclose(metrics["hit_rate"], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(metrics["map"], [(1 + 2 / 3) / 2, 0.0, 0.5 / 3])
    np.testing.assert_allclose(metrics["mrr"], [1.0, 0.0, 0.5])


def test_ranking_metrics_reject_users_without_relevant_items() -> None:
    with pytest.raises(ValueError, match="at least one relevant"):
        ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([0]))


def _brute_force(hits_row: list[bool], n_relevant: int) -> dict[str, float]:
    k = len(hits_row)
    dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits_row) if hit)
    idcg = sum(1 / math.log2(rank + 2) for rank in range(min(n_relevant, k)))
    found, precision_sum = 0, 0.0
    for rank, hit in enumerate(hits_row, start=1):
        if hit:
            found += 1
            precision_sum += found / rank
    return {
        "ndcg": dcg / idcg,
        "recall": sum(hits_row) / n_relevant,
        "precision": sum(hits_row) / k,
        "hit_rate": float(any(hits_row)),
        "map": precision_sum / min(n_relevant, k),
        "mrr": next((1 / (rank + 1) for rank, hit in enumerate(hits_row) if hit), 0.0),
    }


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_ranking_metrics_equal_a_per_user_loop(data: st.DataObject) -> None:
    k = data.draw(st.integers(1, 12))
    n_users = data.draw(st.integers(1, 8))
    rows = [data.draw(st.lists(st.booleans(), min_size=k, max_size=k)) for _ in range(n_users)]
    n_relevant = [data.draw(st.integers(max(1, sum(row)), 30)) for row in rows]
    vectorised = ranking_metrics(np.array(rows), np.array(n_relevant))
    for user, (row, count) in enumerate(zip(rows, n_relevant, strict=True)):
        for name, value in _brute_force(row, count).items():
            assert vectorised[name][user] == pytest.approx(value), name


def test_rating_errors() -> None:
    errors = rating_errors(np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 3.0]))
    assert errors["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert errors["mae"] == pytest.approx(1.0)


def test_coverage() -> None:
    assert catalogue_coverage(np.array([[1, 2], [2, 3]]), 10) == pytest.approx(0.3)


# --- cut-offs from one list -----------------------------------------------------------------------
def test_metrics_at_smaller_cutoffs_are_read_off_the_longest_list() -> None:
    hits = np.array([[0, 1, 0, 0, 1]], dtype=bool)
    metrics = ranking_metrics_at(hits, np.array([2]), (1, 3, 5))
    assert metrics["ndcg_at_1"][0] == 0.0 and metrics["hit_rate_at_1"][0] == 0.0
    assert metrics["ndcg_at_3"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert metrics["recall_at_3"][0] == 0.5 and metrics["recall_at_5"][0] == 1.0
    assert metrics["map_at_5"][0] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert metrics["mrr_at_5"][0] == 0.5
    with pytest.raises(ValueError, match="largest cut-off"):
        ranking_metrics_at(hits, np.array([2]), (10,))


# --- beyond accuracy ----------------------------------------------------------------------------------
def test_exposure_gini_hand_computed() -> None:
    assert exposure_gini(np.array([[0, 0], [0, 1]]), 2) == pytest.approx(0.25)  # exposure (3, 1)
    assert exposure_gini(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)  # everyone shown once
    assert exposure_gini(np.array([[3, 3], [3, 3]]), 4) == pytest.approx(0.75)  # all on one of 4: (n-1)/n
    assert exposure_gini(np.array([[3, -1]]), 4) == pytest.approx(0.75)  # empty slots are no exposure


def test_novelty_and_average_popularity_hand_computed() -> None:
    lists = np.array([[0, 1], [2, -1]])
    np.testing.assert_allclose(novelty(lists, np.array([0.5, 0.25, 1.0])), [1.5, 0.0])  # -log2: 1, 2 | 0
    np.testing.assert_allclose(average_popularity(lists, np.array([10, 2, 6])), [6.0, 6.0])
    assert catalogue_coverage(lists, 4) == pytest.approx(0.75)  # -1 is no item


def test_intra_list_diversity_hand_computed() -> None:
    genres = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=float)  # item 3 has no genre
    diversity = intra_list_diversity(np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1]]), sp.csr_matrix(genres))
    assert diversity[0] == pytest.approx(1 - (1 / math.sqrt(2)) / 3)  # pairs: 1/sqrt(2), 0, 0
    assert diversity[1] == pytest.approx(1.0)
    assert math.isnan(diversity[2])  # a single item has no pair


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_intra_list_diversity_equals_a_pairwise_loop(data: st.DataObject) -> None:
    n_items, n_genres, k = data.draw(st.integers(2, 9)), data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    genres = np.array(
        data.draw(
            st.lists(st.lists(st.booleans(), min_size=n_genres, max_size=n_genres), min_size=n_items, max_size=n_items)
        ),
        dtype=float,
    )
    lists = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(0, n_items - 1), min_size=k, max_size=k, unique=k <= n_items),
                min_size=1,
                max_size=5,
            )
        )
    )
    for row, value in zip(lists, intra_list_diversity(lists, genres), strict=True):
        distances = []
        for a in range(k):
            for b in range(a + 1, k):
                u, v = genres[row[a]], genres[row[b]]
                norm = np.linalg.norm(u) * np.linalg.norm(v)
                distances.append(1 - (u @ v / norm if norm else 0.0))
        assert value == pytest.approx(np.mean(distances))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_gini_equals_the_mean_absolute_difference_formula(data: st.DataObject) -> None:
    n_items = data.draw(st.integers(1, 8))
    lists = np.array(
        data.draw(st.lists(st.lists(st.integers(0, n_items - 1), min_size=3, max_size=3), min_size=1, max_size=6))
    )
    exposure = np.bincount(lists.ravel(), minlength=n_items).astype(float)
    # Gini = sum_ij |x_i - x_j| / (2 n^2 mean), the textbook definition
    expected = np.abs(exposure[:, None] - exposure[None, :]).sum() / (2 * n_items**2 * exposure.mean())
    assert exposure_gini(lists, n_items) == pytest.approx(expected)


# --- bootstrap ----------------------------------------------------------------------------------------
def test_bootstrap_equals_an_explicit_resampling_loop() -> None:
    values = np.random.default_rng(1).random((37, 3))
    weights = np.arange(1, 38, dtype=float)
    draws = np.random.default_rng(5).integers(0, 37, size=(200, 37))  # the same stream, drawn row by row
    expected = np.array([(values[d] * weights[d, None]).sum(0) / weights[d].sum() for d in draws])
    np.testing.assert_allclose(bootstrap_means(values, weights, n_resamples=200, seed=5), expected)


def test_bootstrap_does_not_depend_on_its_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(2).random((50, 2))
    whole = bootstrap_means(values, n_resamples=30, seed=9)
    monkeypatch.setattr("recsys_models.metrics._BOOTSTRAP_CELLS", 120)  # blocks of 2 resamples
    np.testing.assert_allclose(bootstrap_means(values, n_resamples=30, seed=9), whole, rtol=1e-12)


def test_bootstrap_leaves_out_missing_values_and_brackets_the_mean() -> None:
    values = np.array([[1.0, np.nan], [2.0, 4.0], [3.0, 6.0], [4.0, np.nan]])
    samples = bootstrap_means(values, n_resamples=2000, seed=0)
    low, high = percentile_interval(samples)
    assert low[0] < 2.5 < high[0] and 1.0 <= low[0] and high[0] <= 4.0
    assert 4.0 <= low[1] <= 5.0 <= high[1] <= 6.0  # only users 2 and 3 have the second metric
    constant = percentile_interval(bootstrap_means(np.full((5, 1), 0.3), n_resamples=50))
    assert constant[0][0] == pytest.approx(0.3) and constant[1][0] == pytest.approx(0.3)
    empty = percentile_interval(bootstrap_means(np.empty((0, 2)), n_resamples=10))
    assert np.isnan(empty[0]).all()


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(200):
        sample = rng.binomial(1, 0.3, size=(200, 1)).astype(float)
        low, high = percentile_interval(bootstrap_means(sample, n_resamples=400, seed=trial))
        covered += low[0] <= 0.3 <= high[0]
    assert 0.88 <= covered / 200 <= 0.99
