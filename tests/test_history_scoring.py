"""Scoring a history given at scoring time (issue 20): every family, through one API.

The equality test: a known user's own training history (train + valid, with ratings and
timestamps), given as a history, must give that user's trained scores: to 1e-5 for families
whose history scores are computed as their training scores are, and within a stated tolerance
for fold-in families whose trained user parameters are iterates of stochastic training.
"""

from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pytest

from recsys_models.features import ItemFeatures, build_item_features
from recsys_models.history import History
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import FAMILIES, family_class, load_model, make_config
from recsys_models.testing import FAST_CONFIGS, low_rank_ratings

# Fold-in families: (least mean per-user Pearson correlation of the scores, least mean top-10 overlap)
# with the trained scores. They train on every row (no validation, no early stopping) with full
# batches for long enough to come near their optimum; fast configs stop far from it.
CLOSE = {
    "biased_mf": (0.99, 0.95),
    "mf": (0.99, 0.95),
    "bpr_mf": (0.99, 0.9),
    "gmf": (0.99, 0.9),
    "mlp": (0.8, 0.7),
    "neumf": (0.85, 0.75),
    "hybrid_features": (0.99, 0.9),
}
FULL_BATCH = {"batch_size": 4096, "learning_rate": 0.05}
TRAINED: dict[str, dict[str, Any]] = {
    "biased_mf": {"epochs": 80, "n_factors": 4, **FULL_BATCH},
    "mf": {"epochs": 300, "n_factors": 4, **FULL_BATCH},
    "bpr_mf": {"epochs": 80, "n_factors": 4, "n_negatives": 20, **FULL_BATCH},
    "gmf": {"epochs": 80, "n_factors": 4, "n_negatives": 20, **FULL_BATCH},
    "mlp": {"epochs": 80, "layers": [8, 4], "n_negatives": 20, **FULL_BATCH},
    "neumf": {"epochs": 80, "n_factors": 4, "layers": [8, 4], "n_negatives": 20, **FULL_BATCH},
    "hybrid_features": {"epochs": 80, "n_factors": 4, "n_negatives": 20, "id_dropout": 0.0, **FULL_BATCH},
}
EXACT = 1e-5


def genre_features(items: IdVocabulary) -> ItemFeatures:
    """One or two of five genres and a decade per item."""
    ids = items.ids
    frame = pl.DataFrame(
        {
            "item_id": ids,
            "title": [f"item {i}" for i in range(ids.size)],
            "year": [1970 + 10 * (i % 4) for i in range(ids.size)],
            "genres": [
                ["Action", "Comedy", "Drama", "Horror", "Romance"][i % 5 : i % 5 + 1 + i % 2] for i in range(ids.size)
            ],
        },
        schema={"item_id": pl.Int64, "title": pl.String, "year": pl.Int32, "genres": pl.List(pl.String)},
    )
    return build_item_features(frame)


@pytest.fixture(scope="module")
def parts() -> tuple[Interactions, Interactions]:
    frame = low_rank_ratings(n_users=50, n_items=30).sort("timestamp")
    full = Interactions.from_frame(frame)
    cut = int(frame.height * 0.9)
    return (
        Interactions.from_frame(frame.head(cut), full.users, full.items),
        Interactions.from_frame(frame.slice(cut), full.users, full.items),
    )


@pytest.fixture(scope="module")
def models(parts) -> dict:
    """Each family fitted once for the module's tests, on first use."""

    class Models(dict):
        def __missing__(self, family: str):
            self[family] = fitted(family, parts)
            return self[family]

    return Models()


def fitted(family: str, parts: tuple[Interactions, Interactions], values: dict | None = None):
    model_class = family_class(family)
    features = genre_features(parts[0].items) if model_class.uses_item_features else None
    config = make_config(family, values if values is not None else TRAINED.get(family, FAST_CONFIGS.get(family)))
    data: tuple[Interactions, Interactions | None] = (parts[0].concat(parts[1]), None) if family in TRAINED else parts
    model = model_class(config, TrainingOptions(seed=3, device="cpu")).fit(*data, features)
    # two-tower families: candidates by brute force, as histories get them (set on every family, read by those)
    cast(Any, model).exact_search = True
    return model


def own_histories(parts: tuple[Interactions, Interactions], users: np.ndarray) -> list[History]:
    """Each user's training rows (train + valid) as a history with ratings, timestamps and their id."""
    full = parts[0].concat(parts[1])
    histories = []
    for user in users:
        rows = np.flatnonzero(full.user_idx == user)
        histories.append(
            History(
                full.items.ids[full.item_idx[rows]], full.rating[rows], full.timestamp[rows], int(full.users.ids[user])
            )
        )
    return histories


def closeness(history: np.ndarray, trained: np.ndarray) -> tuple[float, float]:
    """Mean per-row Pearson correlation and mean overlap of the top 10."""
    correlation = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(history, trained, strict=True)])
    top = lambda scores: np.argsort(-scores, axis=1, kind="stable")[:, :10]  # noqa: E731
    overlap = np.mean([np.intersect1d(a, b).size / 10 for a, b in zip(top(history), top(trained), strict=True)])
    return float(correlation), float(overlap)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_own_history_gives_trained_scores(family: str, parts, models) -> None:
    model = models[family]
    users = np.arange(0, parts[0].n_users, 2)
    from_history = model.score_history(model.history_batch(own_histories(parts, users)))
    trained = model.score(users)
    assert from_history.shape == trained.shape
    if family in CLOSE:
        correlation, overlap = closeness(from_history, trained)
        least_correlation, least_overlap = CLOSE[family]
        assert correlation >= least_correlation and overlap >= least_overlap, (correlation, overlap)
    else:
        np.testing.assert_allclose(from_history, trained, rtol=EXACT, atol=EXACT * float(np.abs(trained).max()))


@pytest.mark.parametrize(
    ("family", "values"),
    [
        ("als", {"iterations": 3, "n_factors": 8, "solver": "cholesky"}),
        ("repeat", {"recency_half_life_days": 0.001}),  # the synthetic timestamps span minutes
        ("user_knn", {"similarity": "pearson"}),
        ("user_knn", {"similarity": "adjusted_cosine", "ranking_neighbours": 5}),
        ("item_knn", {"values": "binary"}),
        ("ease", {"values": "binary", "l2": 10.0}),
    ],
)
def test_other_settings_are_exact_too(family: str, values: dict, parts) -> None:
    model = fitted(family, parts, values)
    users = np.arange(parts[0].n_users)
    from_history = model.score_history(model.history_batch(own_histories(parts, users)))
    trained = model.score(users)
    np.testing.assert_allclose(from_history, trained, rtol=EXACT, atol=EXACT * float(np.abs(trained).max()))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_new_user_with_bare_item_ids_gets_recommendations(family: str, parts, models) -> None:
    model = models[family]
    history = History(model.items.ids[[1, 4, 7, 11]])  # no weights, no timestamps, no user id
    answer = model.recommend_from_history([history], k=5, exclude_seen=not model.recommends_seen)
    assert answer.items.shape == (1, 5) and np.unique(answer.items).size == 5
    assert np.isfinite(answer.scores).all() and answer.unknown_items.tolist() == [0]
    if not model.recommends_seen:
        assert not np.isin(answer.items, [1, 4, 7, 11]).any()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_history_scores_survive_save_and_load(family: str, parts, models, tmp_path: Path) -> None:
    model = models[family]
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    histories = own_histories(parts, np.arange(3))
    np.testing.assert_allclose(
        loaded.score_history(loaded.history_batch(histories)),
        model.score_history(model.history_batch(histories)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_unknown_items_are_dropped_and_counted_and_history_items_excluded(models) -> None:
    model = models["ease"]
    known = model.items.ids[:3]
    answer = model.recommend_from_history([History([*known, 999_999, 999_998]), History([5, 6])], k=5)
    assert answer.unknown_items.tolist() == [2, 2]
    assert not np.isin(answer.items[0], np.arange(3)).any()
    counts = model.item_counts.astype(np.float32)  # nothing known: the cold answer, by training count
    np.testing.assert_array_equal(answer.scores[1], np.sort(counts)[::-1][:5])
    np.testing.assert_array_equal(counts[answer.items[1]], answer.scores[1])


def test_sequence_families_read_the_order_given(parts, models) -> None:
    items = parts[0].items.ids[[0, 5, 9, 14]]
    for family in ("markov", "sasrec", "gru4rec"):
        model = models[family]
        forward, backward = (
            model.score_history(model.history_batch([History(order)])) for order in (items, items[::-1])
        )
        assert not np.allclose(forward, backward), family


def test_timestamps_order_a_history(parts, models) -> None:
    model = models["markov"]
    items = parts[0].items.ids[[0, 5, 9]]
    given = model.score_history(model.history_batch([History(items[::-1], timestamps=[30, 20, 10])]))
    np.testing.assert_allclose(given, model.score_history(model.history_batch([History(items)])))


def test_a_new_users_history_moves_the_ranking(models) -> None:
    model = models["item_knn"]
    first, second = model.items.ids[:4], model.items.ids[-4:]
    answer = model.recommend_from_history([History(first), History(second)], k=5)
    assert answer.items[0].tolist() != answer.items[1].tolist()
