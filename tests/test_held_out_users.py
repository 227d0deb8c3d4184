"""P5, held-out users scored from their history (PROTOCOLS.md): the split keeps whole users out of
training and puts every row in exactly one part; the evaluation ranks those users from their
histories with the same metric code as every other protocol; the pipeline's stages run it."""

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from data_contracts.engine import ContractViolation
from data_contracts.splits import check_split
from recsys_models.evaluation import (
    EvaluationConfig,
    evaluate_ranking,
    evaluate_ranking_from_histories,
    protocol_evaluation_config,
)
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config
from recsys_models.splitting import TEST_HISTORY, SplitSettings, part_names, protocol_split
from recsys_models.testing import low_rank_ratings
from stages.evaluate import evaluate
from stages.layout import EvalDir
from stages.manifest import read_manifest
from stages.split import serve_split
from stages.split import split as split_stage
from stages.train import train

P5 = SplitSettings(protocol="held-out-users", seed=7)
ORDER = ["user_id", "timestamp", "item_id"]


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    """700 users with about 9 ratings each: 10% of the eligible users is more than the minimum 50."""
    return low_rank_ratings(n_users=700, n_items=30, density=0.3, seed=1)


def test_held_out_users_leave_training_wholly_and_every_row_lands_in_one_part(ratings: pl.DataFrame) -> None:
    split = protocol_split(ratings, P5)
    assert split.test_history is not None and split.valid is not None
    lengths = ratings.group_by("user_id").len()
    eligible = lengths.filter(pl.col("len") >= 5).height
    held_out = set(split.test_history["user_id"])
    assert len(held_out) == math.ceil(0.1 * eligible) == split.details["held_out_users"]
    assert len(held_out) > 50
    assert held_out <= set(lengths.filter(pl.col("len") >= 5)["user_id"])
    assert not held_out & (set(split.train["user_id"]) | set(split.valid["user_id"]))
    assert set(split.test["user_id"]) == held_out
    every_part = pl.concat(list(split.parts.values())).sort(ORDER)
    assert every_part.equals(ratings.sort(ORDER))
    for user in sorted(held_out)[:20]:  # the first floor(0.8 m) by (timestamp, item) are the history
        rows = ratings.filter(pl.col("user_id") == user).sort(ORDER)
        n_history = math.floor(0.8 * rows.height)
        assert split.test_history.filter(pl.col("user_id") == user).sort(ORDER).equals(rows.head(n_history))
        assert split.test.filter(pl.col("user_id") == user).sort(ORDER).equals(rows.slice(n_history))


def test_the_draw_follows_the_seed_and_holds_out_at_least_fifty_users() -> None:
    small = low_rank_ratings(n_users=80, n_items=30, density=0.4, seed=2)  # every user is eligible
    drawn = {seed: set(protocol_split(small, P5.model_copy(update={"seed": seed})).test["user_id"]) for seed in (1, 2)}
    assert len(drawn[1]) == len(drawn[2]) == 50  # 10% of 80 is 8: the minimum rules
    assert drawn[1] != drawn[2]
    assert drawn[1] == set(protocol_split(small.reverse(), P5.model_copy(update={"seed": 1})).test["user_id"])


def test_too_few_interactions_for_anyone_to_be_held_out_is_one_clear_error() -> None:
    two_each = pl.DataFrame(
        {"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3], "rating": [4.0] * 4, "timestamp": [1, 2, 3, 4]}
    )
    with pytest.raises(ValueError, match="at least 5 interactions"):
        protocol_split(two_each, P5)


def test_seed_is_a_parameter_of_held_out_users_only() -> None:
    with pytest.raises(ValueError, match="seed do not apply"):
        SplitSettings(protocol="temporal-user", seed=3)


def test_the_split_contract_fails_a_held_out_user_with_a_training_row(ratings: pl.DataFrame) -> None:
    parts = protocol_split(ratings, P5).parts
    assert check_split(parts, "held-out-users")["test_leakage"]["passed"]
    leaked = parts[TEST_HISTORY].head(1)
    with pytest.raises(ContractViolation, match="held-out users have rows in the training part"):
        check_split(parts | {"train": pl.concat([parts["train"], leaked])}, "held-out-users")
    earlier = parts["test"].with_columns(pl.col("timestamp") - 10_000)  # test before the user's own history
    with pytest.raises(ContractViolation, match="test rows are earlier"):
        check_split(parts | {"test": earlier}, "held-out-users")


def test_a_known_users_own_history_ranks_as_the_user_does_for_a_closed_form_family() -> None:
    """The plumbing of history ranking: EASE scores a history exactly as its trained user, so the
    per-user metrics of users given their own training rows equal their id-based ones."""
    frame = low_rank_ratings(n_users=60, n_items=40, seed=4).sort("timestamp")
    cut = int(frame.height * 0.8)
    train_rows, test_rows = frame.head(cut), frame.slice(cut)
    model = family_class("ease")(make_config("ease", {"l2": 10.0}), TrainingOptions(seed=0)).fit(
        Interactions.from_frame(train_rows)
    )
    config = EvaluationConfig(relevance_threshold=3.5, n_bootstrap=50)
    by_id = evaluate_ranking(model, test_rows, config)
    from_history = evaluate_ranking_from_histories(model, train_rows, test_rows, config)
    assert by_id.summary["n_eval_users"] == from_history.summary["n_eval_users"] > 10
    for metric in ("ndcg_at_10", "recall_at_20", "hit_rate_at_5"):
        assert from_history.summary[metric] == pytest.approx(by_id.summary[metric], abs=1e-6)
    assert from_history.per_user["n_history"].to_list() == by_id.per_user["n_history"].to_list()
    assert from_history.recommendations["item_id"].to_list() == by_id.recommendations["item_id"].to_list()
    assert from_history.summary["n_unknown_history_items"] == 0


def test_held_out_users_are_scored_from_their_history_better_than_popularity(tmp_path: Path) -> None:
    """Through the stages: split, train, evaluate; a history-based family beats popularity on
    planted blocks (each user likes one block of items), and serving refits on every row."""
    rng = np.random.default_rng(0)
    users, blocks = np.arange(600), rng.integers(0, 4, 600)
    rows = []
    for user, block in zip(users, blocks, strict=True):
        liked = rng.choice(np.arange(block * 25, block * 25 + 25), size=12, replace=False)
        rows += [(int(user) + 1, int(item) + 1, 5.0, int(user) * 100 + position) for position, item in enumerate(liked)]
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    (tmp_path / "validated").mkdir()
    frame.write_parquet(tmp_path / "validated" / "ratings.parquet")
    split_dir = split_stage(tmp_path / "validated", tmp_path / "split", P5)
    assert sorted(path.name for path in split_dir.glob("*.parquet")) == sorted(
        f"{p}.parquet" for p in part_names("held-out-users")
    )
    assert read_manifest(split_dir)["counts"]["held_out"] == {"users": 60, "history_rows": 60 * 9}  # floor(0.8 * 12)
    ndcg = {}
    for family, values in (("popularity", {}), ("item_knn", {}), ("ease", {"l2": 10.0})):
        train_dir = train(split_dir, tmp_path / family / "train", family, values)
        metrics = EvalDir(evaluate(split_dir, train_dir, tmp_path / family / "eval")).metrics()
        assert metrics["n_eval_users"] == 60 and metrics["n_cold_users"] == 0
        assert "rmse" not in metrics  # a history predicts no rating
        ndcg[family] = (metrics["ndcg_at_10"], metrics["ndcg_at_10_ci_low"])
    assert ndcg["item_knn"][1] > ndcg["popularity"][0] + 0.2
    assert ndcg["ease"][1] > ndcg["popularity"][0] + 0.2
    served = serve_split(split_dir, tmp_path / "serve")
    assert (
        pl.read_parquet(served / "train.parquet").height + pl.read_parquet(served / "valid.parquet").height
        == frame.height
    )


def test_the_evaluation_of_histories_ranks_over_every_candidate_only(ratings: pl.DataFrame) -> None:
    config = protocol_evaluation_config("held-out-users").model_copy(update={"n_negatives": 10})
    model = family_class("popularity")(make_config("popularity", {}), TrainingOptions()).fit(
        Interactions.from_frame(ratings)
    )
    with pytest.raises(ValueError, match="n_negatives must be None"):
        evaluate_ranking_from_histories(model, ratings.head(20), ratings.tail(20), config)
