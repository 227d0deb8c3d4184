"""What the family tests share, shipped with the library: small configurations that fit every
family on toy data in about a second (the contract tests, the repeat-consumption tests and the
progress-view tests use them; tests never import other test modules for them)."""

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
