"""BPR-MF on block-structured implicit data, its early stopping, and the validation NDCG helper."""

import math
from typing import Any, Literal

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models.bpr_mf import BPRMF, BPRMFConfig
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.testing import block_data, own_block_share, to_frame
from recsys_models.validation_metrics import validation_ndcg

CPU = TrainingOptions(device="cpu", seed=0)


@pytest.mark.parametrize(
    ("optimizer", "sampling", "learning_rate"), [("adam", "uniform", 0.05), ("adagrad", "popularity", 0.3)]
)
def test_finds_block_structure(
    optimizer: Literal["adam", "adagrad"], sampling: Literal["uniform", "popularity"], learning_rate: float
) -> None:
    matrix, user_block, item_block = block_data()
    config = BPRMFConfig(
        n_factors=4,
        epochs=30,
        batch_size=256,
        learning_rate=learning_rate,
        optimizer=optimizer,
        negative_sampling=sampling,
    )
    model = BPRMF(config, CPU).fit(Interactions.from_frame(to_frame(matrix)))
    assert own_block_share(model, matrix, user_block, item_block) > 0.95
    losses = [record["train_loss"] for record in model.history]
    assert losses[-1] < 0.5 * losses[0]


def test_only_ratings_at_or_above_min_rating_are_positives() -> None:
    # inside a block the ratings are 5; the other block's items are rated 1 (seen, disliked)
    matrix, user_block, item_block = block_data(seed=1)
    other = (user_block[:, None] != item_block[None, :]) & (np.random.default_rng(2).random(matrix.shape) < 0.5)
    ratings = np.where(matrix, 5.0, 1.0)
    data = Interactions.from_frame(to_frame(matrix | other, ratings))
    config = BPRMFConfig(n_factors=4, epochs=30, batch_size=256, learning_rate=0.05, min_rating=4.0)
    model = BPRMF(config, CPU).fit(data)
    assert own_block_share(model, matrix | other, user_block, item_block) > 0.95
    with pytest.raises(ValueError, match="no positive interactions"):
        BPRMF(BPRMFConfig(min_rating=6.0), CPU).fit(data)


def test_a_user_with_every_item_is_left_out_of_training(caplog: pytest.LogCaptureFixture) -> None:
    # regression: on 1M synthetic ratings one user had rated every item and sampling raised
    matrix, user_block, item_block = block_data(seed=4)
    matrix[0, :] = True
    config = BPRMFConfig(n_factors=4, epochs=30, batch_size=256, learning_rate=0.05, negative_sampling="uniform")
    model = BPRMF(config, CPU).fit(Interactions.from_frame(to_frame(matrix)))
    assert "leaving out 1 users" in caplog.text
    assert own_block_share(model, matrix, user_block, item_block) > 0.95


def test_early_stopping_on_validation_ndcg_then_refit() -> None:
    matrix, _, _ = block_data(seed=3)
    frame = to_frame(matrix).sort("timestamp")
    full = Interactions.from_frame(frame)
    cut = int(frame.height * 0.85)
    train = Interactions.from_frame(frame.head(cut), full.users, full.items)
    valid = Interactions.from_frame(frame.slice(cut), full.users, full.items)
    config = BPRMFConfig(n_factors=4, epochs=40, batch_size=256, learning_rate=0.05, patience=2)
    model = BPRMF(config, CPU).fit(train, valid)
    validated = [record for record in model.history if "valid_ndcg_at_10" in record]
    refit = [record for record in model.history if "refit_train_loss" in record]
    best = max(validated, key=lambda record: record["valid_ndcg_at_10"])
    assert validated and best["valid_ndcg_at_10"] > 0.3
    assert len(refit) == best["epoch"]  # the refit on train + valid runs for the best epoch count


def test_validation_ndcg_matches_a_hand_computed_value() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=np.float32))
    # user 0: item 0 excluded, ranking 1, 2, 3: hit at rank 2 (item 2) and rank 3 (item 3), two relevant
    user_0 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    # user 1: item 3 excluded, ranking 2, 1, 0: hit at rank 3; user 2 has nothing relevant and is skipped
    user_1 = 1 / math.log2(4)
    value = validation_ndcg(lambda users: scores[users], relevant, exclude, k=3)
    assert value == pytest.approx((user_0 + user_1) / 2)


def test_large_data_get_larger_batches_instead_of_more_steps() -> None:
    # max_batches_per_epoch=1: every epoch is one step over all pairs, as if batch_size were that large
    data = Interactions.from_frame(to_frame(block_data(seed=5)[0]))
    common: dict[str, Any] = {"n_factors": 4, "epochs": 3, "negative_sampling": "uniform"}
    capped = BPRMF(BPRMFConfig(**common, max_batches_per_epoch=1), CPU).fit(data)
    one_batch = BPRMF(BPRMFConfig(**common, batch_size=len(data)), CPU).fit(data)
    small_batches = BPRMF(BPRMFConfig(**common, batch_size=64), CPU).fit(data)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(capped.score(users), one_batch.score(users))
    assert not np.allclose(capped.score(users), small_batches.score(users))


def test_validation_scores_a_seeded_sample_of_at_most_validation_users() -> None:
    relevant = sp.csr_matrix(np.eye(10, 6, dtype=np.float32)[np.arange(10) % 6 != 5])  # 8 users with an item
    model = BPRMF(BPRMFConfig(validation_users=3), CPU)
    sample = model._validation_sample(relevant)
    kept = np.flatnonzero(np.diff(sample.indptr))
    assert kept.size == 3 and (sample[kept] != relevant[kept]).nnz == 0
    np.testing.assert_array_equal(kept, np.flatnonzero(np.diff(model._validation_sample(relevant).indptr)))
    assert BPRMF(BPRMFConfig(validation_users=8), CPU)._validation_sample(relevant) is relevant
