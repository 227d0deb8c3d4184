"""What the family tests share, shipped with the library: small configurations that fit every
family on toy data in about a second (the contract tests, the repeat-consumption tests and the
progress-view tests use them; tests never import other test modules for them)."""

import numpy as np
import polars as pl

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
    "two_tower_rerank": {"retriever": {"epochs": 3, "dimension": 8, "batch_size": 256}, "ranker_config": {"l2": 10.0},
                         "n_candidates": 20},
    "stacked": {"parts": {"ease": {"l2": 10.0}, "item_knn": {}, "popularity": {}}, "n_candidates": 10,
                "relevance_threshold": None, "ranker": {"n_estimators": 20, "min_data_in_leaf": 5}},
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
