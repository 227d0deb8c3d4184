"""Serving a history (issue 20): the pyfunc answers {"user_id", "history"} rows from the history."""

import io
import json
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import polars as pl
import pytest

from recsys_models.ease import EASE, EASEConfig
from recsys_models.history import History
from recsys_models.interactions import Interactions
from recsys_models.registry import family_class
from serving.pyfunc_model import RecommenderPyfunc


def served(model) -> RecommenderPyfunc:
    """The pyfunc around a fitted model, as `load_context` leaves it (integer ids, seen items excluded)."""
    pyfunc = RecommenderPyfunc()
    pyfunc.model, pyfunc.id_texts, pyfunc.exclude_seen = model, None, True
    return pyfunc


def test_rows_with_a_history_are_answered_from_it(tiny_ratings: pl.DataFrame) -> None:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    model = EASE(EASEConfig(l2=1.0)).fit(Interactions.from_frame(tiny_ratings))
    # NaN: what the scoring server makes of a record without a history
    frame = pd.DataFrame({"user_id": [1, 999, 998, 997], "history": [None, [10, 40, 12345], float("nan"), [777]]})
    answer = pl.from_pandas(served(model).predict(None, frame, params={"k": 2}))
    by_user = {user: rows for (user,), rows in answer.group_by("user_id")}
    assert by_user[999]["cold_user"].to_list() == [False, False]  # never seen, but a history to go on
    assert by_user[999]["unknown_items"].to_list() == [1, 1]
    expected = model.recommend_from_history([History([10, 40])], k=2)
    assert by_user[999]["item_id"].to_list() == model.items.ids[expected.items[0]].tolist()
    assert not set(by_user[999]["item_id"].to_list()) & {10, 40}
    assert by_user[998]["cold_user"].to_list() == [True, True]  # no history: today's cold answer
    assert by_user[997]["cold_user"].to_list() == [True, True]  # a history of unknown items only
    assert by_user[1]["cold_user"].to_list() == [False, False]
    written = io.StringIO()
    predictions_to_json(served(model).predict(None, frame), written)  # no NaN in what the server sends
    rows = json.loads(written.getvalue())["predictions"]
    assert {row["unknown_items"] for row in rows if row["user_id"] == 1} == {None}


def test_a_history_must_be_a_list(tiny_ratings: pl.DataFrame) -> None:
    model = EASE(EASEConfig(l2=1.0)).fit(Interactions.from_frame(tiny_ratings))
    with pytest.raises(ValueError, match="history must be a list"):
        served(model).predict(None, pd.DataFrame({"user_id": [1], "history": ["10,20"]}))


@pytest.mark.real_data
@pytest.mark.parametrize("family", ["ease", "als", "mult_dae"])
def test_a_one_genre_history_gets_mostly_that_genre_on_ml_100k(family: str, datasets_dir: Path) -> None:
    """A never-seen user whose history is the 20 most-rated films of horror alone (43 such films of
    the 92 horror ones) gets mostly horror (6+ of 10, none of the history), unlike popularity."""
    from recsys_models.datasets.movielens import load_ml_100k
    from recsys_models.options import TrainingOptions

    raw = load_ml_100k(datasets_dir / "ml-100k")
    assert raw.items is not None  # ml-100k has u.item
    horror = set(raw.items.filter(pl.col("genres").list.contains("Horror"))["item_id"].to_list())
    horror_only = set(raw.items.filter(pl.col("genres") == ["Horror"])["item_id"].to_list())
    counts = raw.ratings.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
    history = [item for item in counts["item_id"].to_list() if item in horror_only][:20]
    model_class = family_class(family)
    config = model_class.config_type(**({"epochs": 20} if family == "mult_dae" else {}))
    model = model_class(config, TrainingOptions(seed=1, device="cpu")).fit(Interactions.from_frame(raw.ratings))
    never_seen = cast(int, raw.ratings["user_id"].max()) + 1000  # an Int64 column
    answer = served(model).predict(None, pd.DataFrame({"user_id": [never_seen], "history": [history]}), {"k": 10})
    assert not answer["cold_user"].any()
    recommended = answer["item_id"].to_list()
    assert sum(item in horror for item in recommended) >= 6, recommended
    popular = model.items.ids[model.popular_items(10)].tolist()
    assert recommended != popular and sum(item in horror for item in popular) < 3
    assert not set(recommended) & set(history)
    assert np.all(np.diff(answer["score"].to_numpy()) <= 0)


def test_a_file_of_histories_is_scored_per_user(tiny_ratings: pl.DataFrame, tmp_path: Path) -> None:
    from stages.manifest import read_manifest
    from stages.score_histories import write_history_recommendations

    model = EASE(EASEConfig(l2=1.0)).fit(Interactions.from_frame(tiny_ratings))
    pyfunc = served(model)
    interactions = pl.DataFrame({"user_id": [7, 7, 8, 9], "item_id": [40, 10, 20, 12345], "timestamp": [2, 1, 5, 3]})
    out = write_history_recommendations(
        lambda frame, params: pyfunc.predict(None, frame, params), interactions, 2, tmp_path / "scores", batch_size=2
    )
    written = pl.concat([pl.read_parquet(part) for part in sorted(out.glob("part-*.parquet"))])
    assert written.columns == ["user_id", "item_id", "score", "rank", "cold_user", "unknown_items"]
    assert read_manifest(out)["counts"] == {
        "users": 3,
        "rows": 6,
        "parts": 2,
        "history_rows": 4,
        "unknown_items": 1,
        "cold_users": 1,
    }
    expected = model.recommend_from_history([History([10, 40], timestamps=[1, 2])], k=2)
    assert written.filter(pl.col("user_id") == 7)["item_id"].to_list() == model.items.ids[expected.items[0]].tolist()
