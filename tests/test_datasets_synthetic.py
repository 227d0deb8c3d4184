"""The synthetic generator: exact sizes, no duplicate pairs, power laws, learnable low-rank structure."""

from typing import cast

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from recsys_models.columns import ITEMS_SCHEMA, RATINGS_SCHEMA
from recsys_models.datasets import HALF_STARS, RawDataset, SyntheticConfig, generate_synthetic
from recsys_models.datasets.generic import REJECTED_SCHEMA
from recsys_models.datasets.synthetic import GENRE_NAMES

SMALL = SyntheticConfig(n_users=200, n_items=150, n_ratings=6_000, seed=7)


@pytest.fixture(scope="module")
def small() -> RawDataset:
    return generate_synthetic(SMALL)


def test_sizes_schemas_and_ranges(small: RawDataset) -> None:
    ratings, items = small.ratings, small.items
    assert items is not None  # the generator always makes an item table
    assert ratings.schema == pl.Schema(RATINGS_SCHEMA) and items.schema == pl.Schema(ITEMS_SCHEMA)
    assert len(ratings) == SMALL.n_ratings
    assert ratings["user_id"].n_unique() == SMALL.n_users  # every user rates something
    assert ratings["user_id"].min() == 1 and ratings["user_id"].max() == SMALL.n_users
    assert 1 <= cast(int, ratings["item_id"].min()) and cast(int, ratings["item_id"].max()) <= SMALL.n_items
    assert not ratings.select(pl.struct("user_id", "item_id").is_duplicated().any()).item()
    assert ratings["rating"].is_in(np.arange(0.5, 5.01, 0.5).tolist()).all()
    assert (
        SMALL.start_timestamp <= cast(int, ratings["timestamp"].min())
        and cast(int, ratings["timestamp"].max()) < SMALL.end_timestamp
    )
    assert small.scale == HALF_STARS and small.tags is None and small.name == "synthetic"
    assert small.rejected.is_empty() and small.rejected.schema == pl.Schema(REJECTED_SCHEMA)


def test_items_have_titles_years_and_one_to_three_distinct_genres(small: RawDataset) -> None:
    items = small.items
    assert items is not None  # the generator always makes an item table
    assert items["item_id"].to_list() == list(range(1, SMALL.n_items + 1))
    assert items["title"].to_list()[:3] == ["Item 1", "Item 2", "Item 3"]
    assert items["year"].is_between(1950, 2019).all()
    lengths = items["genres"].list.len()
    assert lengths.min() == 1 and lengths.max() == 3
    assert (items["genres"].list.n_unique() == lengths).all()
    assert set(items["genres"].explode().unique()) <= set(GENRE_NAMES)


def test_same_seed_same_data_other_seed_other_data(small: RawDataset) -> None:
    again = generate_synthetic(SMALL)
    assert_frame_equal(again.ratings, small.ratings)
    assert again.items is not None and small.items is not None  # the generator always makes an item table
    assert_frame_equal(again.items, small.items)
    other = generate_synthetic(SMALL.model_copy(update={"seed": 8}))
    assert not other.ratings.equals(small.ratings)


def test_activity_and_popularity_follow_the_exponents() -> None:
    def top_decile_share(config: SyntheticConfig, column: str) -> float:
        counts = generate_synthetic(config).ratings[column].value_counts()["count"].sort(descending=True)
        return cast(int, counts.head(len(counts) // 10).sum()) / cast(int, counts.sum())  # UInt32 counts

    skewed = SyntheticConfig(n_users=1000, n_items=1000, n_ratings=20_000)
    flat = skewed.model_copy(update={"user_activity_exponent": 0.0, "item_popularity_exponent": 0.0})
    # The top tenth of a power law holds far more than a tenth; a flat draw only Poisson noise above it.
    assert top_decile_share(skewed, "user_id") > 0.5
    assert top_decile_share(skewed, "item_id") > 0.35
    assert top_decile_share(flat, "user_id") < 0.2
    assert top_decile_share(flat, "item_id") < 0.2


def test_low_rank_model_beats_biases_on_held_out_ratings() -> None:
    """A rank-k SVD of bias residuals predicts held-out ratings clearly better than biases alone."""
    config = SyntheticConfig(
        n_users=300, n_items=200, n_ratings=30_000, user_activity_exponent=0, item_popularity_exponent=0, n_factors=4
    )
    ratings = generate_synthetic(config).ratings
    users, items = ratings["user_id"].to_numpy() - 1, ratings["item_id"].to_numpy() - 1
    stars = ratings["rating"].to_numpy()
    test = np.random.default_rng(1).random(stars.size) < 0.2
    train = ~test
    mean = stars[train].mean()
    user_bias = np.bincount(users[train], stars[train] - mean) / np.bincount(users[train])
    residual = stars - mean - user_bias[users]
    item_counts = np.bincount(items[train], minlength=config.n_items)  # every item is rated: 150 on average
    item_bias = np.bincount(items[train], residual[train], config.n_items) / item_counts
    baseline = mean + user_bias[users] + item_bias[items]
    matrix = np.zeros((config.n_users, config.n_items))
    matrix[users[train], items[train]] = (stars - baseline)[train] * matrix.size / train.sum()
    left, singular, right = np.linalg.svd(matrix, full_matrices=False)
    low_rank = (left[:, :4] * singular[:4]) @ right[:4]
    baseline_rmse = np.sqrt(np.mean((baseline - stars)[test] ** 2))
    low_rank_rmse = np.sqrt(np.mean((baseline + low_rank[users, items] - stars)[test] ** 2))
    assert low_rank_rmse < 0.8 * baseline_rmse


def test_a_full_matrix_and_extreme_exponents_still_finish_without_duplicates() -> None:
    full = generate_synthetic(SyntheticConfig(n_users=30, n_items=20, n_ratings=600)).ratings
    assert len(full) == 600 and not full.select(pl.struct("user_id", "item_id").is_duplicated().any()).item()
    extreme = SyntheticConfig(
        n_users=100, n_items=80, n_ratings=7_000, user_activity_exponent=3.0, item_popularity_exponent=3.0
    )
    ratings = generate_synthetic(extreme).ratings
    assert len(ratings) == 7_000 and not ratings.select(pl.struct("user_id", "item_id").is_duplicated().any()).item()


def test_config_is_frozen_strict_and_consistent() -> None:
    with pytest.raises(ValidationError, match="n_user"):
        SyntheticConfig(n_user=5)  # type: ignore[call-arg]  # the misspelt key is the point: it must be refused
    with pytest.raises(ValidationError, match="frozen"):
        SMALL.seed = 3
    with pytest.raises(ValidationError, match="n_ratings 101 must lie between"):
        SyntheticConfig(n_users=10, n_items=10, n_ratings=101)
    with pytest.raises(ValidationError, match="n_ratings 5 must lie between"):
        SyntheticConfig(n_users=10, n_items=10, n_ratings=5)
    with pytest.raises(ValidationError, match="must be before end_timestamp"):
        SyntheticConfig(start_timestamp=10, end_timestamp=10)
    with pytest.raises(ValidationError):
        SyntheticConfig(n_genres=19)
