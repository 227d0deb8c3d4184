"""Contract tests every family passes, plus known-answer tests on synthetic data."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_models.biased_mf import BiasedMF, BiasedMFConfig
from recsys_models.exceptions import NotFittedError, UnknownFamilyError
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.popularity import Popularity
from recsys_models.registry import FAMILIES, family_class, load_model, make_config
from recsys_models.testing import fitted, low_rank_ratings

# `parts` (the toy train and valid every family fits on) is a fixture of tests/conftest.py


@pytest.mark.parametrize("family", sorted(FAMILIES))
class TestRecommenderContract:
    def test_scores_are_finite_and_shaped(self, family: str, parts) -> None:
        model = fitted(family, parts)
        scores = model.score(np.arange(5))
        assert scores.shape == (5, parts[0].n_items)
        assert np.isfinite(scores).all()

    def test_batch_scores_equal_one_by_one(self, family: str, parts) -> None:
        model = fitted(family, parts)
        batch = model.score(np.array([0, 3, 7]))
        single = np.vstack([model.score(np.array([user])) for user in (0, 3, 7)])
        np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6)

    def test_recommend_excludes_seen_items(self, family: str, parts) -> None:
        model = fitted(family, parts)
        items, _ = model.recommend(np.arange(parts[0].n_users), k=5)
        seen = parts[0].concat(parts[1]).tocsr("binary")
        for user, row in enumerate(items):
            assert not set(row) & set(seen[user].indices)

    def test_save_and_load_give_identical_scores(self, family: str, parts, tmp_path: Path) -> None:
        model = fitted(family, parts)
        model.save(tmp_path / "model")
        loaded = load_model(tmp_path / "model")
        assert type(loaded) is type(model) and loaded.config == model.config
        np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))
        np.testing.assert_array_equal(loaded.users.ids, model.users.ids)

    def test_same_seed_same_scores(self, family: str, parts) -> None:
        np.testing.assert_array_equal(
            fitted(family, parts).score(np.arange(4)), fitted(family, parts).score(np.arange(4))
        )

    def test_unknown_user_index_is_a_clear_error(self, family: str, parts) -> None:
        model = fitted(family, parts)
        with pytest.raises(ValueError, match="map raw ids first"):
            model.score(np.array([parts[0].n_users]))

    def test_scoring_before_fit_is_a_clear_error(self, family: str, parts) -> None:
        with pytest.raises(NotFittedError):
            family_class(family)().recommend(np.array([0]))

    def test_rating_prediction_matches_the_family_type(self, family: str, parts) -> None:
        model = fitted(family, parts)
        if model.predicts_ratings:
            predicted = model.predict(np.array([0, 1]), np.array([0, 1]))
            assert predicted.shape == (2,) and np.isfinite(predicted).all()
        else:
            with pytest.raises(NotImplementedError, match="does not predict ratings"):
                model.predict(np.array([0]), np.array([0]))


def test_unknown_family_and_config_keys_are_rejected() -> None:
    with pytest.raises(UnknownFamilyError, match="known: "):
        family_class("nope")
    with pytest.raises(ValueError, match="n_factorz"):
        make_config("biased_mf", {"n_factorz": 3})
    with pytest.raises(TypeError, match="BiasedMFConfig"):
        BiasedMF(config=Popularity.config_type())


def test_popularity_ranks_by_training_count(tiny_ratings: pl.DataFrame) -> None:
    model = Popularity().fit(Interactions.from_frame(tiny_ratings))
    counts = {10: 3, 20: 4, 30: 2, 40: 3, 50: 2}
    ranked = model.items.ids[model.popular_items(5)]
    assert [counts[item] for item in ranked] == sorted(counts.values(), reverse=True)
    items, _ = model.recommend(model.users.index_of(np.array([4])), k=3)  # user 4 saw 20 and 40
    assert set(model.items.ids[items[0]]) == {10, 30, 50}


def test_biased_mf_learns_planted_structure() -> None:
    frame = low_rank_ratings(n_users=150, n_items=80, seed=1).sort("timestamp")
    full = Interactions.from_frame(frame)
    cut_valid, cut_test = int(frame.height * 0.7), int(frame.height * 0.85)
    train = Interactions.from_frame(frame.head(cut_valid), full.users, full.items)
    valid = Interactions.from_frame(frame.slice(cut_valid, cut_test - cut_valid), full.users, full.items)
    test = Interactions.from_frame(frame.slice(cut_test), full.users, full.items)
    model = BiasedMF(BiasedMFConfig(n_factors=8, epochs=60, factor_l2=0.02), TrainingOptions(seed=0)).fit(train, valid)
    rmse = float(np.sqrt(np.mean((model.predict(test.user_idx, test.item_idx) - test.rating) ** 2)))
    global_mean_rmse = float(np.sqrt(np.mean((train.rating.mean() - test.rating) ** 2)))
    assert rmse < 0.75 * global_mean_rmse
    assert model.history and "valid_rmse" in model.history[0]
