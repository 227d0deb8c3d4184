"""Ranking and rating metrics against hand-computed cases and a brute-force reference."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_models.metrics import catalogue_coverage, mean_with_interval, ranking_metrics, rating_errors


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


def test_interval_and_coverage() -> None:
    interval = mean_with_interval(np.array([0.0, 1.0, 0.0, 1.0]))
    assert interval["mean"] == 0.5
    assert interval["stderr"] == pytest.approx(np.std([0, 1, 0, 1], ddof=1) / 2)
    assert interval["ci_low"] < 0.5 < interval["ci_high"]
    assert catalogue_coverage(np.array([[1, 2], [2, 3]]), 10) == pytest.approx(0.3)
