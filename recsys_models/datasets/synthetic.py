"""Synthetic ratings with a known low-rank structure, for tests and runs without real data.

User activity and item popularity follow power laws (Zipf-like in the rank). Each user's items
are drawn by popularity without replacement; the rating of a pair is a global mean plus user and
item biases plus a dot product of latent factors plus Gaussian noise, rounded to half stars, so a
matrix-factorisation model has something to learn. Everything is vectorised and seeded.
"""

import logging

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

from recsys_models.columns import GENRES, ITEM_ID, ITEMS_SCHEMA, RATING, RATINGS_SCHEMA, TIMESTAMP, TITLE, USER_ID, YEAR
from recsys_models.datasets.generic import REJECTED_SCHEMA
from recsys_models.datasets.types import HALF_STARS, RawDataset

logger = logging.getLogger(__name__)

GENRE_NAMES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
MAX_GENRES_PER_ITEM = 3
FIRST_YEAR, LAST_YEAR = 1950, 2019
MEAN_RATING = 3.5
BIAS_STD = 0.4
AFFINITY_STD = 0.8  # standard deviation of the latent dot product, in stars
OVERDRAW = 1.5  # draws per missing item, relative to the chance that a draw hits an item not held yet
MAX_DRAWS_PER_ITEM = 4  # a user draws at most this many times the catalogue size per round
WEIGHTED_ROUNDS = 3  # popularity-weighted rounds; uniform rounds then finish users who rate most items
MAX_ROUNDS = 24


class SyntheticConfig(BaseModel):
    """Size and shape of a synthetic ratings data set."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    n_users: PositiveInt = 2000
    """Number of users; every user rates at least one item."""
    n_items: PositiveInt = 1000
    """Number of items in the catalogue; the least popular may have no ratings."""
    n_ratings: PositiveInt = 100_000
    """Exact number of ratings, at least `n_users` and at most `n_users * n_items`."""
    user_activity_exponent: NonNegativeFloat = Field(default=1.0, le=3.0)
    """Power-law exponent of activity by user rank (0: every user equally active)."""
    item_popularity_exponent: NonNegativeFloat = Field(default=1.0, le=3.0)
    """Power-law exponent of popularity by item rank (0: every item equally popular)."""
    n_factors: PositiveInt = 8
    """Rank of the latent user-item affinity."""
    noise: NonNegativeFloat = 0.5
    """Standard deviation of the Gaussian noise added to each rating, in stars."""
    n_genres: int = Field(default=len(GENRE_NAMES), ge=1, le=len(GENRE_NAMES))
    """How many genres of the fixed genre list the items use."""
    start_timestamp: NonNegativeInt = 1_420_070_400
    """First possible rating time, Unix seconds (default 2015-01-01 UTC)."""
    end_timestamp: PositiveInt = 1_577_836_800
    """Rating times lie before this, Unix seconds (default 2020-01-01 UTC)."""
    seed: NonNegativeInt = 0
    """Seed of the random generator; the same config always gives the same data."""

    @model_validator(mode="after")
    def _check_consistency(self) -> "SyntheticConfig":
        if self.start_timestamp >= self.end_timestamp:
            raise ValueError(
                f"start_timestamp {self.start_timestamp} must be before end_timestamp {self.end_timestamp}"
            )
        if not self.n_users <= self.n_ratings <= self.n_users * self.n_items:
            raise ValueError(
                f"n_ratings {self.n_ratings} must lie between n_users {self.n_users} "
                f"and n_users * n_items {self.n_users * self.n_items}"
            )
        return self


def _power_law(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Normalised weights rank**-exponent, ranks shuffled over the n positions."""
    weights = (rng.permutation(n) + 1.0) ** -exponent
    return weights / weights.sum()


def _allocate(weights: np.ndarray, total: int, cap: int) -> np.ndarray:
    """Integer counts summing to `total`, each in [1, cap], proportional to `weights` where the cap allows."""
    extra, room = total - weights.size, cap - 1
    share = extra * weights / weights.sum()
    capped = np.zeros(weights.size, dtype=bool)
    while (newly_capped := ~capped & (share > room)).any():  # water-filling, usually a few passes
        capped |= newly_capped
        free = np.where(capped, 0.0, weights)
        scale = (extra - room * int(capped.sum())) / free.sum() if free.any() else 0.0
        share = np.where(capped, float(room), free * scale)
    counts = np.floor(share).astype(np.int64)
    shortfall = extra - int(counts.sum())
    counts[np.argsort(counts - share, kind="stable")[:shortfall]] += 1  # largest fractional parts
    return counts + 1


def _draw(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    cumulative = np.cumsum(weights)
    picks = np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right")
    return np.minimum(picks, weights.size - 1)


def _rank_within_user(users: np.ndarray, n_users: int) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of `users`, which must be grouped ascending."""
    sizes = np.bincount(users, minlength=n_users)
    return np.arange(users.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _sample_pairs(
    counts: np.ndarray, popularity: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, `counts[u]` distinct items drawn by popularity without replacement.

    Draws with replacement and keeps each user's first new distinct items in draw order, which is
    sequential sampling without replacement. Users still short draw again, a batch sized by the
    popularity mass they do not hold yet; after `WEIGHTED_ROUNDS` the draws are uniform, so that
    users who rate most of the catalogue finish quickly. Returns (user, item) indices sorted by
    user, then item.
    """
    n_users, n_items = counts.size, popularity.size
    uniform = np.full(n_items, 1.0 / n_items)
    accepted = np.empty(0, dtype=np.int64)  # sorted keys user * n_items + item
    deficit = counts.copy()
    for attempt in range(MAX_ROUNDS):
        weights = popularity if attempt < WEIGHTED_ROUNDS else uniform
        held = np.bincount(accepted // n_items, weights=weights[accepted % n_items], minlength=n_users)
        expected = OVERDRAW * deficit / np.maximum(1.0 - held, 1.0 / n_items**2)  # a draw is new w.p. 1 - held
        batch = np.where(deficit > 0, np.ceil(np.minimum(expected, MAX_DRAWS_PER_ITEM * n_items)), 0).astype(np.int64)
        keys = np.repeat(np.arange(n_users), batch) * n_items + _draw(weights, int(batch.sum()), rng)
        if accepted.size:
            position = np.minimum(np.searchsorted(accepted, keys), accepted.size - 1)
            keys = keys[accepted[position] != keys]
        first = np.unique(keys, return_index=True)[1]
        keys = keys[np.sort(first)]  # distinct, still grouped by user and in draw order
        users = keys // n_items
        keys = keys[_rank_within_user(users, n_users) < deficit[users]]
        accepted = np.sort(np.concatenate([accepted, keys]))
        deficit = counts - np.bincount(accepted // n_items, minlength=n_users)
        if not deficit.any():
            return accepted // n_items, accepted % n_items
    raise RuntimeError(f"could not place {int(deficit.sum())} ratings without duplicates; lower the exponents")


def _ratings(config: SyntheticConfig, rng: np.random.Generator) -> pl.DataFrame:
    activity = _power_law(config.n_users, config.user_activity_exponent, rng)
    popularity = _power_law(config.n_items, config.item_popularity_exponent, rng)
    counts = _allocate(activity, config.n_ratings, config.n_items)
    users, items = _sample_pairs(counts, popularity, rng)

    factor_std = np.sqrt(AFFINITY_STD / np.sqrt(config.n_factors))  # so the dot product has AFFINITY_STD
    user_factors = rng.normal(0.0, factor_std, (config.n_users, config.n_factors))
    item_factors = rng.normal(0.0, factor_std, (config.n_items, config.n_factors))
    user_bias = rng.normal(0.0, BIAS_STD, config.n_users)
    item_bias = rng.normal(0.0, BIAS_STD, config.n_items)
    affinity = np.einsum("ij,ij->i", user_factors[users], item_factors[items])
    score = MEAN_RATING + user_bias[users] + item_bias[items] + affinity + rng.normal(0.0, config.noise, users.size)
    stars = np.clip(np.round(score / HALF_STARS.step) * HALF_STARS.step, HALF_STARS.minimum, HALF_STARS.maximum)

    joined = rng.integers(config.start_timestamp, config.end_timestamp, config.n_users)
    start = joined[users]
    timestamps = start + np.floor(rng.random(users.size) * (config.end_timestamp - start)).astype(np.int64)
    frame = pl.DataFrame({USER_ID: users + 1, ITEM_ID: items + 1, RATING: stars, TIMESTAMP: timestamps})
    return frame.cast(RATINGS_SCHEMA).sort(USER_ID, TIMESTAMP, ITEM_ID)  # type: ignore[arg-type]  # polars types cast's mapping key as invariant: dict[str, DataType] is refused


def _items(config: SyntheticConfig, rng: np.random.Generator) -> pl.DataFrame:
    per_item = min(MAX_GENRES_PER_ITEM, config.n_genres)
    n_genres = rng.integers(1, per_item + 1, config.n_items)
    picks = rng.random((config.n_items, config.n_genres)).argsort(axis=1)[:, :per_item]
    chosen = picks[np.arange(per_item) < n_genres[:, None]]  # row-major: each item's genres stay together
    offsets = np.concatenate([[0], np.cumsum(n_genres)]).astype(np.int32)
    names = np.asarray(GENRE_NAMES[: config.n_genres])[chosen]
    genres = pl.from_arrow(pa.ListArray.from_arrays(pa.array(offsets), pa.array(names)))
    frame = pl.DataFrame(
        {
            ITEM_ID: np.arange(1, config.n_items + 1),
            YEAR: rng.integers(FIRST_YEAR, LAST_YEAR + 1, config.n_items),
            GENRES: genres,
        }
    ).with_columns(pl.format("Item {}", ITEM_ID).alias(TITLE))
    return frame.select(*ITEMS_SCHEMA).cast(ITEMS_SCHEMA)  # type: ignore[arg-type]  # polars types cast's mapping key as invariant: dict[str, DataType] is refused


def generate_synthetic(config: SyntheticConfig) -> RawDataset:
    """A synthetic data set on `HALF_STARS`: ratings, items with genres, no tags, no rejected rows."""
    rng = np.random.default_rng(config.seed)
    ratings = _ratings(config, rng)
    items = _items(config, rng)
    logger.info("generated %d synthetic ratings (%d users, %d items)", len(ratings), config.n_users, config.n_items)
    return RawDataset(
        name="synthetic",
        ratings=ratings,
        items=items,
        tags=None,
        rejected=pl.DataFrame(schema=REJECTED_SCHEMA),
        scale=HALF_STARS,
        source=f"synthetic generator {config.model_dump_json()}",
    )
