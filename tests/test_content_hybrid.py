"""Content-based and hybrid families, the cold-item slice and the warm/cold run-summary table:
known answers on synthetic data whose preferences follow the item genres."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_models.content import ContentTFIDF, ContentTFIDFConfig
from recsys_models.evaluation import evaluate_cold_items
from recsys_models.features import ItemFeatures, build_item_features
from recsys_models.hybrid import HybridFeatures, HybridFeaturesConfig
from recsys_models.hybrid.parts import standardise
from recsys_models.hybrid.switching import HybridSwitching, HybridSwitchingConfig
from recsys_models.hybrid.weighted import HybridWeighted, HybridWeightedConfig
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.popularity import Popularity
from recsys_models.registry import load_model
from reporting.warm_cold_table import format_warm_cold_table

GENRES = ("Action", "Comedy", "Drama", "Horror")
N_USERS, N_WARM, N_COLD = 80, 48, 8
OPTIONS = TrainingOptions(seed=0, device="cpu")


def genre_items(n_items: int, first_id: int = 1) -> pl.DataFrame:
    """Items cycling through GENRES, each also with a decade; titles share no word."""
    return pl.DataFrame(
        {
            "item_id": np.arange(first_id, first_id + n_items),
            "title": [f"t{first_id + i}" for i in range(n_items)],
            "year": [1980 + 10 * (i % 3) for i in range(n_items)],
            "genres": [[GENRES[i % 4]] for i in range(n_items)],
        },
        schema={"item_id": pl.Int64, "title": pl.String, "year": pl.Int32, "genres": pl.List(pl.String)},
    )


@pytest.fixture(scope="module")
def catalogue() -> ItemFeatures:
    """N_WARM rated items (ids 1..) and N_COLD never-rated items (ids 1001..), same genre cycle."""
    return build_item_features(pl.concat([genre_items(N_WARM), genre_items(N_COLD, first_id=1001)]))


def taste_ratings(seed: int = 0) -> pl.DataFrame:
    """User u loves genre u % 4 (ratings 4.5-5) and dislikes the rest (1-2.5); 60% of pairs rated."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((N_USERS, N_WARM)) < 0.6)
    loved = (items % 4) == (users % 4)
    rating = np.where(loved, rng.choice([4.5, 5.0], users.size), rng.choice([1.0, 1.5, 2.0, 2.5], users.size))
    return pl.DataFrame(
        {"user_id": users + 1, "item_id": items + 1, "rating": rating, "timestamp": rng.permutation(users.size)}
    )


@pytest.fixture(scope="module")
def parts() -> tuple[Interactions, Interactions]:
    frame = taste_ratings().sort("timestamp")
    full = Interactions.from_frame(frame)
    cut = int(frame.height * 0.85)
    return (
        Interactions.from_frame(frame.head(cut), full.users, full.items),
        Interactions.from_frame(frame.slice(cut), full.users, full.items),
    )


def cold_test(model, per_user: int = 2) -> pl.DataFrame:
    """Each user's test rows: `per_user` cold items of the loved genre (5.0) and one of another (1.0)."""
    rows = []
    for user in model.users.ids:
        loved = [1001 + i for i in range(N_COLD) if i % 4 == (user - 1) % 4][:per_user]
        other = next(1001 + i for i in range(N_COLD) if i % 4 != (user - 1) % 4)
        rows += [(user, item, 5.0, 10**6) for item in loved] + [(user, other, 1.0, 10**6)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")


def loved_genre_share(model, catalogue: ItemFeatures) -> float:
    """Share of users whose best-scored cold item has their loved genre."""
    cold = catalogue.subset(np.arange(1001, 1001 + N_COLD))
    best = cold.items.ids[model.score_new_items(np.arange(len(model.users)), cold).argmax(axis=1)]
    return float(np.mean((best - 1001) % 4 == (model.users.ids - 1) % 4))


# --- content_tfidf -------------------------------------------------------------------------------
def test_content_ranks_the_loved_genre_first_for_warm_and_cold_items(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    model = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    top, _ = model.recommend(np.arange(len(model.users)), k=2)
    assert np.mean((model.items.ids[top] - 1) % 4 == ((model.users.ids - 1) % 4)[:, None]) > 0.95
    assert loved_genre_share(model, catalogue) == 1.0


def test_content_scores_a_training_item_like_a_new_item_with_the_same_features(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    model = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    as_new = model.score_new_items(np.arange(5), catalogue.subset(model.items.ids))
    np.testing.assert_allclose(as_new, model.score(np.arange(5)), rtol=1e-5, atol=1e-6)


def test_mean_centring_pushes_disliked_genres_below_unrelated_items(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    centred = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    scores = centred.score(np.arange(len(centred.users)))
    liked = (centred.items.ids[None, :] - 1) % 4 == ((centred.users.ids - 1) % 4)[:, None]
    assert (scores[~liked] < 0.2).mean() > 0.9 and (scores[liked] > 0.2).mean() > 0.9
    raw = ContentTFIDF(ContentTFIDFConfig(centre_ratings=False), OPTIONS).fit(*parts, catalogue)
    assert raw.score(np.arange(len(raw.users))).min() >= 0.0  # positive weights only: no item repelled


def test_more_like_this_returns_items_of_the_same_genre_without_the_item_itself(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    model = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    similar, similarity = model.similar_items(np.arange(8), k=5)
    assert not (similar == np.arange(8)[:, None]).any()
    assert ((model.items.ids[similar] - 1) % 4 == ((model.items.ids[:8] - 1) % 4)[:, None]).all()
    assert (np.diff(similarity, axis=1) <= 1e-6).all()


def test_content_needs_item_features(parts: tuple[Interactions, Interactions]) -> None:
    with pytest.raises(ValueError, match="needs item features"):
        ContentTFIDF().fit(*parts, None)
    with pytest.raises(ValueError, match="at least one"):
        ContentTFIDFConfig(genre_weight=0, tag_weight=0, title_weight=0, year_weight=0)


# --- hybrids -------------------------------------------------------------------------------------
def test_weighted_hybrid_blends_standardised_scores_with_the_fitted_weight(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures, tmp_path: Path
) -> None:
    config = HybridWeightedConfig(component="ease", component_config={"l2": 10.0})
    model = HybridWeighted(config, OPTIONS).fit(*parts, catalogue)
    assert model.weight in config.weights and len(model.history) == len(config.weights)
    assert model.weight == max(model.history, key=lambda r: (r["valid_ndcg_at_10"], r["weight"]))["weight"]
    users = np.arange(6)
    expected = model.weight * standardise(model.part("collaborative").score(users)) + (1 - model.weight) * standardise(
        model.part("content").score(users)
    )
    np.testing.assert_allclose(model.score(users), expected, rtol=1e-5, atol=1e-5)
    assert loved_genre_share(model, catalogue) == 1.0  # cold items: content, whatever the weight
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "parts" / "collaborative" / "model.json").exists()
    loaded = load_model(tmp_path / "model")
    cold = catalogue.subset(np.arange(1001, 1001 + N_COLD))
    np.testing.assert_array_equal(loaded.score_new_items(users, cold), model.score_new_items(users, cold))


def test_weighted_hybrid_prefers_the_informative_part() -> None:
    """Features that say nothing (one shared genre) must get weight near 0 of content: w high."""
    frame = taste_ratings(seed=1).sort("timestamp")
    full = Interactions.from_frame(frame)
    cut = int(frame.height * 0.85)
    train, valid = (
        Interactions.from_frame(frame.head(cut), full.users, full.items),
        Interactions.from_frame(frame.slice(cut), full.users, full.items),
    )
    flat = genre_items(N_WARM).with_columns(
        pl.lit(["Drama"]).alias("genres"), pl.lit(1990).cast(pl.Int32).alias("year")
    )
    config = HybridWeightedConfig(component="ease", component_config={"l2": 10.0}, weights=(0.0, 0.5, 1.0))
    model = HybridWeighted(config, OPTIONS).fit(train, valid, build_item_features(flat))
    assert model.weight >= 0.5


def test_switching_hybrid_sends_light_users_to_content_and_the_rest_to_the_component(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    history = np.diff(parts[0].concat(parts[1]).tocsr("binary").indptr)
    threshold = int(np.median(history))
    config = HybridSwitchingConfig(component="ease", component_config={"l2": 10.0}, thresholds=(threshold,))
    model = HybridSwitching(config, OPTIONS).fit(*parts, catalogue)
    users = np.arange(len(model.users))
    light = history < threshold
    assert model.threshold == threshold and light.any() and (~light).any()
    scores = model.score(users)
    np.testing.assert_array_equal(scores[light], model.part("content").score(users[light]))
    np.testing.assert_array_equal(scores[~light], model.part("collaborative").score(users[~light]))
    assert loved_genre_share(model, catalogue) == 1.0


def test_switching_threshold_is_chosen_on_validation(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    model = HybridSwitching(HybridSwitchingConfig(component_config={"l2": 10.0}), OPTIONS).fit(*parts, catalogue)
    best = max(model.history, key=lambda r: (r["valid_ndcg_at_10"], -r["threshold"]))
    assert model.threshold == best["threshold"]


def test_hybrid_component_is_validated() -> None:
    with pytest.raises(ValueError, match="'nope' cannot be a part"):
        HybridWeightedConfig(component="nope")
    with pytest.raises(ValueError, match="'two_tower_rerank' cannot be a part: a part is a family built on no other"):
        HybridWeightedConfig(component="two_tower_rerank")  # a composite: parts are leaf families
    with pytest.raises(ValueError, match="l2z"):
        HybridSwitchingConfig(component="ease", component_config={"l2z": 1.0})
    with pytest.raises(ValueError, match="must not be a blending hybrid"):
        HybridWeightedConfig(component="hybrid_weighted")


def test_feature_augmented_mf_scores_new_items_from_their_features(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    config = HybridFeaturesConfig(
        n_factors=8,
        epochs=30,
        batch_size=128,
        learning_rate=0.02,
        patience=30,
        min_rating=4.0,
        feature_kinds=("genre",),
    )
    model = HybridFeatures(config, OPTIONS).fit(*parts, catalogue)
    assert loved_genre_share(model, catalogue) > 0.9
    losses = [record["train_loss"] for record in model.history if "train_loss" in record]
    assert losses[-1] < 0.8 * losses[0]


# --- cold-item evaluation and the run summary ----------------------------------------------------
def test_cold_item_slice_scores_content_and_gives_collaborative_zeros(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    content = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    popularity = Popularity().fit(*parts)
    test = cold_test(content)
    scored = evaluate_cold_items(content, test, catalogue).summary
    zeros = evaluate_cold_items(popularity, test, catalogue).summary
    assert scored["cold_items_n_candidate_items"] == N_COLD and scored["cold_items_n_eval_users"] == N_USERS
    assert scored["cold_items_scored"] == 1 and scored["cold_items_ndcg_at_10"] == pytest.approx(1.0)
    assert scored["cold_items_recall_at_5"] == pytest.approx(1.0)
    assert zeros["cold_items_scored"] == 0 and "cannot score" in zeros["cold_items_status"]
    assert zeros["cold_items_ndcg_at_10"] == 0.0 and zeros["cold_items_n_eval_users"] == N_USERS
    # a random order of 8 candidates with 2 relevant: recall@5 = 5/8, HR@5 = 1 - C(6,5)/C(8,5)
    assert scored["cold_items_random_recall_at_5"] == pytest.approx(5 / 8)
    assert scored["cold_items_random_hit_rate_at_5"] == pytest.approx(1 - 6 / 56)


def test_cold_item_slice_leaves_out_items_without_features_and_unknown_users(
    parts: tuple[Interactions, Interactions], catalogue: ItemFeatures
) -> None:
    content = ContentTFIDF(options=OPTIONS).fit(*parts, catalogue)
    extra = pl.DataFrame(
        {"user_id": [1, 9999], "item_id": [5555, 1001], "rating": [5.0, 5.0], "timestamp": [10**6, 10**6]}
    )
    summary = evaluate_cold_items(content, pl.concat([cold_test(content), extra]), catalogue).summary
    assert summary["cold_items_n_without_features"] == 1 and summary["cold_items_n_cold_users"] == 1
    assert evaluate_cold_items(content, cold_test(content), None).summary["cold_items_n_eval_users"] == 0


def test_random_expectation_matches_a_simulation() -> None:
    from recsys_models.evaluation.cold_items import _random_ranking_expectation

    rng = np.random.default_rng(0)
    expected = _random_ranking_expectation(np.array([3]), 12, (5,))
    relevant = np.zeros(12, dtype=bool)
    relevant[:3] = True
    ndcg = []
    for _ in range(20000):
        hits = relevant[rng.permutation(12)][:5]
        ndcg.append((hits / np.log2(np.arange(2, 7))).sum() / (1 / np.log2(np.arange(2, 5))).sum())
    assert expected["ndcg_at_5"][0] == pytest.approx(np.mean(ndcg), abs=0.01)


def test_warm_cold_table_shows_the_families_that_score_cold_items_and_names_the_others_once() -> None:
    base = {
        "ndcg_at_10": 0.1,
        "ndcg_at_10_ci_low": 0.05,
        "ndcg_at_10_ci_high": 0.15,
        "n_eval_users": 30,
        "cold_items_n_eval_users": 12,
        "cold_items_n_candidate_items": 40,
        "cold_items_random_ndcg_at_10": 0.01,
        "cold_items_random_recall_at_10": 0.25,
        "cold_items_random_hit_rate_at_10": 0.4,
    }
    by_family = {
        "ease": base | {"cold_items_scored": 0, "cold_items_ndcg_at_10": 0.0},
        "content_tfidf": base | {"cold_items_scored": 1, "cold_items_ndcg_at_10": 0.2},
    }
    lines = format_warm_cold_table(by_family).splitlines()
    assert not any(line.startswith("ease") for line in lines)  # no row of zeros: named once below
    assert lines[-1] == "cannot score cold items (zeros on the slice; warm figures above): ease"
    assert any(line.startswith("content_tfidf") and "0.2000" in line and "scored" in line for line in lines)
    assert any(line.startswith("(random)") and "0.0100" in line for line in lines)


def test_features_lay_out_in_another_builds_columns(catalogue) -> None:
    names = np.array(["genre:Comedy", "genre:Western", "year:1980s"])
    matrix = catalogue.subset(np.array([2, 1])).in_columns(names).toarray()  # rows follow sorted ids: 1, 2
    np.testing.assert_array_equal(matrix, [[0, 0, 1], [1, 0, 0]])


def test_features_of_a_source_with_genres_only() -> None:
    features = build_item_features(pl.DataFrame({"item_id": [1, 2], "genres": [["A"], ["A", "B"]]}))
    assert list(features.names) == ["genre:A", "genre:B"]
    np.testing.assert_array_equal(features.matrix.toarray(), [[1, 0], [1, 1]])
