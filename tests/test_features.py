"""Item features: genres, tags, title words and year buckets over the whole catalogue."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_models.columns import ITEMS_SCHEMA, TAGS_SCHEMA
from recsys_models.features import ItemFeatures, build_item_features, tags_until, tfidf, title_words
from recsys_models.interactions import IdVocabulary


@pytest.fixture
def items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": [1, 2, 3, 4],
            "title": ["Star Wars", "The Star Trek", "Toy Story", None],
            "year": [1977, 1979, 1995, None],
            "genres": [["Sci-Fi", "Action"], ["Sci-Fi"], ["Animation"], []],
        },
        schema=ITEMS_SCHEMA,
    )


@pytest.fixture
def tags() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 2, 1, 3, 1],
            "item_id": [1, 1, 2, 3, 3],
            "tag": ["Space ", "space", "SPACE", "pixar", "funny"],
            "timestamp": [10, 11, 12, 13, 99],
        },
        schema=TAGS_SCHEMA,
    )


def column(features: ItemFeatures, name: str) -> np.ndarray:
    return features.matrix[:, int(np.flatnonzero(features.names == name)[0])].toarray().ravel()


def test_every_kind_of_feature_is_counted(items: pl.DataFrame, tags: pl.DataFrame) -> None:
    features = build_item_features(items, tags, min_tag_items=2, min_title_items=2)
    assert set(features.kinds()) == {"genre", "tag", "title", "year"}
    np.testing.assert_array_equal(column(features, "genre:Sci-Fi"), [1, 1, 0, 0])
    np.testing.assert_array_equal(column(features, "year:1970s"), [1, 1, 0, 0])
    np.testing.assert_array_equal(column(features, "title:star"), [1, 1, 0, 0])
    np.testing.assert_array_equal(column(features, "tag:space"), [2, 1, 0, 0])  # trimmed, lower-cased, counted
    assert "title:toy" not in features.names  # on one item only: cannot generalise
    assert "tag:pixar" not in features.names
    assert features.matrix[3].nnz == 0  # an item with nothing known has an empty row


def test_tags_after_the_cutoff_are_left_out(tags: pl.DataFrame) -> None:
    assert tags_until(tags, 13)["tag"].to_list() == ["Space ", "space", "SPACE", "pixar"]


def test_aligned_rows_follow_the_vocabulary(items: pl.DataFrame) -> None:
    features = build_item_features(items)
    aligned = features.aligned(IdVocabulary(np.array([2, 3, 77])))  # 77 is not in the catalogue
    np.testing.assert_array_equal(aligned[0].toarray(), features.matrix[1].toarray())
    np.testing.assert_array_equal(aligned[1].toarray(), features.matrix[2].toarray())
    assert aligned[2].nnz == 0


def test_tfidf_rows_have_unit_norm_and_rare_features_weigh_more(items: pl.DataFrame) -> None:
    weighted = tfidf(build_item_features(items, min_title_items=1).matrix).toarray()
    norms = np.linalg.norm(weighted, axis=1)
    np.testing.assert_allclose(norms[:3], 1.0, rtol=1e-5)
    assert norms[3] == 0.0


def test_save_and_load_round_trip(items: pl.DataFrame, tags: pl.DataFrame, tmp_path: Path) -> None:
    features = build_item_features(items, tags)
    features.save(tmp_path / "features.npz")
    loaded = ItemFeatures.load(tmp_path / "features.npz")
    np.testing.assert_array_equal(loaded.items.ids, features.items.ids)
    np.testing.assert_array_equal(loaded.names, features.names)
    assert (loaded.matrix != features.matrix).nnz == 0


def test_title_words_drop_the_year_and_stop_words() -> None:
    assert title_words("The Lord of the Rings (2001)") == ["lord", "rings"]


def test_real_catalogue_features(datasets_dir: Path) -> None:
    from recsys_models.datasets.movielens import load_ml_latest_small

    raw = load_ml_latest_small(datasets_dir / "ml-latest-small")
    assert raw.items is not None  # ml-latest-small has movies.csv
    features = build_item_features(raw.items, raw.tags)
    assert features.matrix.shape[0] == raw.items.height
    kinds = features.kinds()
    assert (kinds == "genre").sum() == 19  # the 19 genres of ml-latest-small, without the placeholder
    assert (kinds == "tag").sum() > 100
    with_genre = np.diff(features.matrix[:, kinds == "genre"].tocsr().indptr) > 0
    assert with_genre.mean() > 0.98


def test_training_features_hold_only_tags_up_to_the_training_cutoff(
    items: pl.DataFrame, tags: pl.DataFrame, tmp_path: Path
) -> None:
    from recsys_models.interactions import Interactions
    from stages.train import load_item_features

    items.write_parquet(tmp_path / "items.parquet")
    applied = {"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 2], "tag": ["space", "space", "pixar", "pixar"]}
    pl.DataFrame(applied | {"timestamp": [10, 12, 11, 13]}, schema=TAGS_SCHEMA).write_parquet(tmp_path / "tags.parquet")
    ratings = pl.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [4.0, 3.0], "timestamp": [5, 12]})
    part = Interactions.from_frame(ratings)
    features = load_item_features(tmp_path, part, part)
    assert features is not None and "tag:space" in features.names  # on two items by the last rating (12)
    assert "tag:pixar" not in features.names  # its second item only at 13, after the last training rating
    assert load_item_features(None, part, part) is None
