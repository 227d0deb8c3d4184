"""Plain MF (no biases): it predicts a bare dot product, learns one, and loses to biased MF on biased data."""

from typing import Any

import numpy as np
import polars as pl
import pytest

from recsys_models.biased_mf import MF, BiasedMF, BiasedMFConfig, MFConfig
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions

CPU = TrainingOptions(device="cpu", seed=0)


def planted_ratings(bias_std: float, seed: int = 0) -> tuple[Interactions, Interactions, Interactions]:
    """Ratings = 1.8^2 offset carried by the factors + user and item biases + rank-2 taste + noise.

    The offset lives inside the dot product (a constant first factor), so with bias_std 0 the
    ratings are an exact dot product plus noise. Split 70/15/15 in time into train, valid, test.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 200, 100
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.3)
    user_factors = np.column_stack([np.full(n_users, 1.8), rng.normal(0, 0.7, (n_users, 2))])
    item_factors = np.column_stack([np.full(n_items, 1.8), rng.normal(0, 0.7, (n_items, 2))])
    truth = (user_factors[users] * item_factors[items]).sum(1)
    truth += rng.normal(0, bias_std, n_users)[users] + rng.normal(0, bias_std, n_items)[items]
    frame = pl.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": np.clip(truth + rng.normal(0, 0.2, users.size), 0.5, 5.0),
            "timestamp": rng.permutation(users.size),
        }
    ).sort("timestamp")
    full = Interactions.from_frame(frame)
    cut_valid, cut_test = int(frame.height * 0.7), int(frame.height * 0.85)
    return (
        Interactions.from_frame(frame.head(cut_valid), full.users, full.items),
        Interactions.from_frame(frame.slice(cut_valid, cut_test - cut_valid), full.users, full.items),
        Interactions.from_frame(frame.slice(cut_test), full.users, full.items),
    )


FAST: dict[str, Any] = {"n_factors": 4, "epochs": 80, "batch_size": 256, "learning_rate": 0.02, "factor_l2": 0.02}


def rmse(model: BiasedMF, test: Interactions) -> float:
    return float(np.sqrt(np.mean((model.predict(test.user_idx, test.item_idx) - test.rating) ** 2)))


def test_prediction_is_the_bare_dot_product() -> None:
    train, valid, _ = planted_ratings(bias_std=0.0)
    model = MF(MFConfig(n_factors=4, epochs=3), CPU).fit(train, valid)
    state = model._state()
    assert not any("bias" in name for name in state)
    users, items = np.arange(10), np.arange(10)
    dot = (state["user_factors.weight"][users] * state["item_factors.weight"][items]).sum(1)
    np.testing.assert_allclose(model.predict(users, items), np.clip(dot, 0.5, 5.0), rtol=1e-5)
    assert model.fallback_rating() == pytest.approx(float(train.concat(valid).rating.mean()), rel=1e-5)


def test_learns_planted_dot_product_ratings() -> None:
    train, valid, test = planted_ratings(bias_std=0.0)
    model = MF(MFConfig(**FAST), CPU).fit(train, valid)
    global_mean_rmse = float(np.sqrt(np.mean((train.rating.mean() - test.rating) ** 2)))
    assert rmse(model, test) < 0.5 * global_mean_rmse


def test_biases_matter_on_biased_data() -> None:
    train, valid, test = planted_ratings(bias_std=0.6, seed=1)
    plain = MF(MFConfig(**FAST), CPU).fit(train, valid)
    biased = BiasedMF(BiasedMFConfig(**FAST), CPU).fit(train, valid)
    assert rmse(biased, test) < 0.7 * rmse(plain, test)


def test_config_has_no_bias_terms() -> None:
    with pytest.raises(ValueError, match="bias_l2"):
        MFConfig(bias_l2=0.1)  # type: ignore[call-arg]  # the unknown key is the point: it must be refused


def test_large_data_get_larger_batches_instead_of_more_steps() -> None:
    # max_batches_per_epoch=1: every epoch is one step over all ratings, as if batch_size were that large
    train, _, _ = planted_ratings(bias_std=0.3)
    users, items = np.arange(train.n_users), np.zeros(train.n_users, dtype=np.int64)
    capped = BiasedMF(BiasedMFConfig(n_factors=4, epochs=3, max_batches_per_epoch=1), CPU).fit(train)
    one_batch = BiasedMF(BiasedMFConfig(n_factors=4, epochs=3, batch_size=len(train)), CPU).fit(train)
    small_batches = BiasedMF(BiasedMFConfig(n_factors=4, epochs=3, batch_size=64), CPU).fit(train)
    np.testing.assert_array_equal(capped.predict(users, items), one_batch.predict(users, items))
    assert not np.allclose(capped.predict(users, items), small_batches.predict(users, items))
