"""What the family tests share, shipped with the library (tests never import other test modules,
tests/test_import_cycles.py checks): small configurations that fit every family on toy data in about a
second (`FAST_CONFIGS`, `fitted`, used by the contract, repeat-consumption and progress-view tests),
the toy data themselves (`low_rank_ratings`, `contract_parts`, `synthetic_item_features`), a split by
time (`split_by_time`), and the block-structured implicit data the torch families must separate
(`block_data`, `to_frame`, `own_block_share`). No pytest here: the library does not depend on it."""

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from recsys_models.features import ItemFeatures, build_item_features
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions

if TYPE_CHECKING:
    from recsys_models.base import Recommender

FAST_CONFIGS: dict[str, dict] = {
    "biased_mf": {"epochs": 5, "n_factors": 8},
    "mf": {"epochs": 5, "n_factors": 8},
    "bpr_mf": {"epochs": 5, "n_factors": 8, "batch_size": 256},
    "als": {"iterations": 3, "n_factors": 8},
    "ease": {"l2": 10.0},
    "hybrid_weighted": {"component": "ease", "component_config": {"l2": 10.0}},
    "hybrid_switching": {"component": "ease", "component_config": {"l2": 10.0}},
    "hybrid_features": {"epochs": 4, "n_factors": 8, "batch_size": 256},
    "gmf": {"epochs": 3, "n_factors": 8, "batch_size": 256},
    "mlp": {"epochs": 3, "layers": [16, 8], "batch_size": 256},
    "neumf": {"epochs": 2, "n_factors": 8, "layers": [16, 8], "batch_size": 256, "pretrain": True},
    "mult_vae": {"epochs": 4, "hidden": [32], "latent": 8, "batch_size": 16},
    "mult_dae": {"epochs": 4, "hidden": [32], "latent": 8, "batch_size": 16},
    "gru4rec": {"epochs": 2, "dim": 8, "hidden_size": 8, "max_length": 8, "batch_size": 32},
    "sasrec": {"epochs": 2, "dim": 8, "max_length": 8, "batch_size": 32},
    "two_tower": {"epochs": 3, "dimension": 8, "batch_size": 256},
    "two_tower_rerank": {
        "retriever": {"epochs": 3, "dimension": 8, "batch_size": 256},
        "ranker_config": {"l2": 10.0},
        "n_candidates": 20,
    },
    "stacked": {
        "parts": {"ease": {"l2": 10.0}, "item_knn": {}, "popularity": {}},
        "n_candidates": 10,
        "relevance_threshold": None,
        "ranker": {"n_estimators": 20, "min_data_in_leaf": 5},
    },
}


def low_rank_ratings(n_users: int = 60, n_items: int = 40, density: float = 0.4, seed: int = 0) -> pl.DataFrame:
    """Ratings from planted user/item biases and 2-d factors, on half stars, with timestamps."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    truth = (
        3.5
        + rng.normal(0, 0.5, n_users)[users]
        + rng.normal(0, 0.5, n_items)[items]
        + (rng.normal(0, 0.8, (n_users, 2))[users] * rng.normal(0, 0.8, (n_items, 2))[items]).sum(1)
    )
    rating = np.clip(np.round(truth * 2) / 2, 0.5, 5.0)
    return pl.DataFrame(
        {"user_id": users + 1, "item_id": items + 101, "rating": rating, "timestamp": rng.permutation(users.size)}
    )


def split_by_time(frame: pl.DataFrame, valid_share: float = 0.15) -> tuple[Interactions, Interactions]:
    """(train, valid): the last `valid_share` of the rows by timestamp are valid; both share the ids of all rows."""
    frame = frame.sort("timestamp")
    full = Interactions.from_frame(frame)
    cut = int(frame.height * (1 - valid_share))
    return (
        Interactions.from_frame(frame.head(cut), full.users, full.items),
        Interactions.from_frame(frame.slice(cut), full.users, full.items),
    )


def contract_parts() -> tuple[Interactions, Interactions]:
    """The contract tests' (train, valid): `low_rank_ratings()` with its last 10% by time as valid."""
    return split_by_time(low_rank_ratings(), valid_share=0.1)


def synthetic_item_features(items: IdVocabulary) -> ItemFeatures:
    """One or two of five genres, a title word shared by a third of the items and a decade per item."""
    ids = items.ids
    genres = [["Action", "Comedy", "Drama", "Horror", "Romance"][i % 5 : i % 5 + 1 + i % 2] for i in range(ids.size)]
    frame = pl.DataFrame(
        {
            "item_id": ids,
            "title": [f"{'star' if i % 3 else 'love'} story {i}" for i in range(ids.size)],
            "year": [1970 + 10 * (i % 4) for i in range(ids.size)],
            "genres": genres,
        },
        schema={"item_id": pl.Int64, "title": pl.String, "year": pl.Int32, "genres": pl.List(pl.String)},
    )
    return build_item_features(frame)


def fitted(family: str, parts: tuple[Interactions, Interactions], seed: int = 3) -> "Recommender":
    """`family` fitted with FAST_CONFIGS on (train, valid); families that use item features get
    `synthetic_item_features`."""
    # the registry imports every family (torch included): only when a test fits one
    from recsys_models.registry import family_class, make_config

    model_class = family_class(family)
    features = synthetic_item_features(parts[0].items) if model_class.uses_item_features else None
    return model_class(make_config(family, FAST_CONFIGS.get(family)), TrainingOptions(seed=seed, device="cpu")).fit(
        *parts, features
    )


BLOCK_USERS, BLOCK_ITEMS = 120, 40  # the size of `block_data`


def block_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two blocks: even users interact with about half of the even items, odd users with odd items.

    Returns (interactions, user block, item block) of BLOCK_USERS x BLOCK_ITEMS; ratings are 5 inside a block.
    """
    rng = np.random.default_rng(seed)
    user_block, item_block = np.arange(BLOCK_USERS) % 2, np.arange(BLOCK_ITEMS) % 2
    matrix = (user_block[:, None] == item_block[None, :]) & (rng.random((BLOCK_USERS, BLOCK_ITEMS)) < 0.5)
    return matrix, user_block, item_block


def to_frame(matrix: np.ndarray, ratings: np.ndarray | None = None) -> pl.DataFrame:
    """The ratings frame of a boolean user x item matrix (ids from 1; rating 5, else `ratings` at each cell)."""
    users, items = np.nonzero(matrix)
    return pl.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": np.full(users.size, 5.0) if ratings is None else ratings[users, items],
            "timestamp": np.random.default_rng(0).permutation(users.size),
        }
    )


def own_block_share(model: "Recommender", matrix: np.ndarray, user_block: np.ndarray, item_block: np.ndarray) -> float:
    """Share of users (with an unseen item of their block) whose top item is from their block."""
    users = model.users.ids - 1
    unseen_own = (user_block[users][:, None] == item_block[None, model.items.ids - 1]) & ~matrix[users][
        :, model.items.ids - 1
    ]
    eligible = np.flatnonzero(unseen_own.any(axis=1))
    top, _ = model.recommend(eligible, k=1)
    return float((item_block[model.items.ids[top[:, 0]] - 1] == user_block[users[eligible]]).mean())
