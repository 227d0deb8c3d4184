"""Known-answer tests of the bias baseline: damped closed-form biases computed by hand."""

import numpy as np
import polars as pl
import pytest

from recsys_models.bias import Bias, BiasConfig, fit_biases
from recsys_models.interactions import Interactions


@pytest.fixture
def small() -> Interactions:
    """3 users, 3 items, 5 ratings; mu = 15 / 5 = 3.

    u1: i1 = 5, i2 = 3;   u2: i1 = 4;   u3: i2 = 2, i3 = 1
    """
    return Interactions.from_frame(
        pl.DataFrame(
            {
                "user_id": [1, 1, 2, 3, 3],
                "item_id": [1, 2, 1, 2, 3],
                "rating": [5.0, 3.0, 4.0, 2.0, 1.0],
                "timestamp": [1, 2, 3, 4, 5],
            }
        )
    )


def test_one_pass_biases_match_the_hand_computation(small: Interactions) -> None:
    biases = fit_biases(small, item_damping=1.0, user_damping=2.0, n_passes=1)
    assert biases.global_mean == pytest.approx(3.0)
    # b_i = sum(r - mu) / (n_i + 1): i1 (2 + 1) / 3, i2 (0 - 1) / 3, i3 (-2) / 2
    np.testing.assert_allclose(biases.item, [1.0, -1 / 3, -1.0], rtol=1e-6)
    # b_u = sum(r - mu - b_i) / (n_u + 2): u1 (1 + 1/3) / 4, u2 (1 - 1) / 3, u3 (-2/3 - 1) / 4
    np.testing.assert_allclose(biases.user, [1 / 3, 0.0, -5 / 12], rtol=1e-6, atol=1e-7)


def test_model_predicts_mu_plus_biases_and_falls_back_to_the_mean(small: Interactions) -> None:
    model = Bias(BiasConfig(item_damping=1.0, user_damping=2.0, n_passes=1)).fit(small)
    # u1 on i3: 3 + 1/3 - 1; u3 on i1: 3 - 5/12 + 1
    np.testing.assert_allclose(model.predict(np.array([0, 2]), np.array([2, 0])), [7 / 3, 43 / 12], rtol=1e-6)
    assert model.fallback_rating() == pytest.approx(3.0)


def test_partial_prediction_leaves_out_the_unknown_side(small: Interactions) -> None:
    model = Bias(BiasConfig(item_damping=1.0, user_damping=2.0, n_passes=1)).fit(small)
    predicted = model.predict_partial(np.array([-1, 0, -1, 0]), np.array([0, -1, -1, 2]))
    # unknown user on i1: mu + b_i1; u1 on an unknown item: mu + b_u1; both unknown: mu; both known: predict
    np.testing.assert_allclose(predicted, [4.0, 10 / 3, 3.0, 7 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[-1, 3\)"):
        model.predict_partial(np.array([-2]), np.array([0]))
    with pytest.raises(ValueError, match="item indices"):
        model.predict_partial(np.array([0]), np.array([3]))


def test_many_passes_reach_the_joint_damped_least_squares_solution(small: Interactions) -> None:
    """At the fixed point each bias is the damped mean of the residual left by the other side."""
    biases = fit_biases(small, item_damping=1.0, user_damping=2.0, n_passes=200)
    users, items, ratings = small.user_idx, small.item_idx, small.rating.astype(np.float64)
    residual_items = ratings - biases.global_mean - biases.user[users]
    residual_users = ratings - biases.global_mean - biases.item[items]
    np.testing.assert_allclose(biases.item, np.bincount(items, residual_items) / (np.bincount(items) + 1.0), atol=1e-5)
    np.testing.assert_allclose(biases.user, np.bincount(users, residual_users) / (np.bincount(users) + 2.0), atol=1e-5)
    one_pass = fit_biases(small, item_damping=1.0, user_damping=2.0, n_passes=1)
    assert not np.allclose(biases.item, one_pass.item)


def test_damping_shrinks_biases_towards_zero(small: Interactions) -> None:
    loose = fit_biases(small, item_damping=0.0, user_damping=0.0)
    damped = fit_biases(small, item_damping=10.0, user_damping=10.0)
    assert np.all(np.abs(damped.item) < np.abs(loose.item))
    assert np.abs(damped.user).sum() < np.abs(loose.user).sum()


def test_predictions_are_clipped_to_the_training_range() -> None:
    # u1 rates everything 5 and i1 is rated 5 by everyone: undamped mu + b_u + b_i overshoots 5
    frame = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3, 3],
            "item_id": [1, 2, 1, 3, 2, 3],
            "rating": [5.0, 5.0, 5.0, 1.0, 1.0, 1.0],
            "timestamp": [1, 2, 3, 4, 5, 6],
        }
    )
    model = Bias(BiasConfig(item_damping=0.0, user_damping=0.0, n_passes=1)).fit(Interactions.from_frame(frame))
    raw = model.biases.pairs(np.array([0]), np.array([0]))
    assert raw[0] > 5.0
    assert model.predict(np.array([0]), np.array([0]))[0] == pytest.approx(5.0)
    assert model.predict_partial(np.array([0]), np.array([0]))[0] == pytest.approx(5.0)


def test_ranking_orders_every_user_by_item_bias(small: Interactions) -> None:
    model = Bias(BiasConfig(item_damping=1.0, user_damping=2.0, n_passes=1)).fit(small)
    scores = model.score(np.arange(3))
    np.testing.assert_allclose(scores[0], 3.0 + 1 / 3 + np.array([1.0, -1 / 3, -1.0]), rtol=1e-6)
    assert all(list(np.argsort(-row)) == [0, 1, 2] for row in scores)
    items, _ = model.recommend(np.array([1]), k=1)  # u2 saw i1: the best item left is i2
    assert items[0, 0] == 1
