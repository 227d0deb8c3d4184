"""GMF, MLP and NeuMF on synthetic data with a known answer: block structure, planted ratings, fusion."""

from typing import Any

import numpy as np
import pytest
import torch

from recsys_models.interactions import Interactions
from recsys_models.ncf import GMF, MLP, GMFConfig, MLPConfig, NeuMF, NeuMFConfig
from recsys_models.ncf.network import NCFNetwork
from recsys_models.options import TrainingOptions
from recsys_models.testing import block_data, low_rank_ratings, own_block_share, split_by_time, to_frame

CPU = TrainingOptions(device="cpu", seed=0)
FAST: dict[str, Any] = {"epochs": 25, "batch_size": 256, "learning_rate": 0.01}


@pytest.mark.parametrize(
    "model",
    [
        GMF(GMFConfig(n_factors=8, **FAST), CPU),
        MLP(MLPConfig(layers=(16, 8), **FAST), CPU),
        NeuMF(NeuMFConfig(n_factors=8, layers=(16, 8), **FAST), CPU),
    ],
    ids=["gmf", "mlp", "neumf"],
)
def test_implicit_objective_finds_block_structure(model) -> None:
    matrix, user_block, item_block = block_data()
    model.fit(Interactions.from_frame(to_frame(matrix)))
    assert own_block_share(model, matrix, user_block, item_block) > 0.95
    losses = [record["train_loss"] for record in model.history]
    assert losses[-1] < 0.7 * losses[0]
    assert not model.predicts_ratings
    with pytest.raises(NotImplementedError, match="does not predict ratings"):
        model.predict(np.array([0]), np.array([0]))


def test_early_stopping_on_validation_ndcg_then_refit_for_the_best_epoch_count() -> None:
    matrix, _, _ = block_data(seed=3)
    train, valid = split_by_time(to_frame(matrix))
    config = GMFConfig(n_factors=8, epochs=30, batch_size=256, learning_rate=0.01, patience=2)
    model = GMF(config, CPU).fit(train, valid)
    validated = [record for record in model.history if "valid_ndcg_at_10" in record]
    refit = [record for record in model.history if "refit_train_loss" in record]
    best = max(validated, key=lambda record: record["valid_ndcg_at_10"])
    assert best["valid_ndcg_at_10"] > 0.3
    assert len(refit) == best["epoch"]


@pytest.mark.parametrize("model_class", [GMF, NeuMF])
def test_explicit_objective_learns_planted_ratings(model_class) -> None:
    frame = low_rank_ratings(n_users=150, n_items=80, seed=1)
    train_valid, test = split_by_time(frame, valid_share=0.15)
    train, valid = split_by_time(frame.sort("timestamp").head(len(train_valid)), valid_share=0.15)
    config = model_class.config_type(objective="explicit", n_factors=8, epochs=60, batch_size=256, learning_rate=0.01)
    model = model_class(config, CPU).fit(train, valid)
    assert model.predicts_ratings and "valid_rmse" in model.history[0]
    predicted = model.predict(test.user_idx, test.item_idx)
    rmse = float(np.sqrt(np.mean((predicted - test.rating) ** 2)))
    global_mean_rmse = float(np.sqrt(np.mean((train.rating.mean() - test.rating) ** 2)))
    assert rmse < 0.85 * global_mean_rmse
    assert predicted.min() >= train.rating.min() and predicted.max() <= train.rating.max()
    assert model.fallback_rating() == pytest.approx(float(np.concatenate([train.rating, valid.rating]).mean()))


def test_score_all_equals_the_pairwise_forward() -> None:
    generator = torch.Generator().manual_seed(0)
    network = NCFNetwork(5, 7, "neumf", 4, (8, 4), 0.5, generator=generator).eval()
    users = torch.tensor([0, 3, 4])
    pairwise = network(users[:, None], torch.arange(7).expand(3, 7))
    torch.testing.assert_close(network.score_all(users), pairwise)


def test_fused_network_scores_as_the_weighted_branches() -> None:
    generator = torch.Generator().manual_seed(1)
    gmf = NCFNetwork(5, 7, "gmf", 4, (), 0.5, generator=generator)
    mlp = NCFNetwork(5, 7, "mlp", 4, (8, 4), 0.5, generator=generator)
    neumf = NCFNetwork(5, 7, "neumf", 4, (8, 4), 0.5, generator=generator)
    neumf.fuse(gmf, mlp, alpha=0.3)
    users = torch.arange(5)
    with torch.no_grad():
        expected = 0.3 * gmf.score_all(users) + 0.7 * mlp.score_all(users)
        torch.testing.assert_close(neumf.score_all(users), expected)
    with pytest.raises(ValueError, match="fuse"):
        neumf.fuse(mlp, gmf, alpha=0.5)


def test_pretrained_neumf_records_both_branches_then_fine_tunes() -> None:
    matrix, user_block, item_block = block_data(seed=5)
    train, valid = split_by_time(to_frame(matrix))
    config = NeuMFConfig(n_factors=8, layers=(16, 8), epochs=8, batch_size=256, learning_rate=0.01, pretrain=True)
    model = NeuMF(config, CPU).fit(train, valid)
    keys = set().union(*model.history)
    assert {"gmf_train_loss", "mlp_train_loss", "gmf_valid_ndcg_at_10", "train_loss", "refit_gmf_train_loss"} <= keys
    assert own_block_share(model, matrix, user_block, item_block) > 0.9


def test_more_negatives_per_positive_are_drawn_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys_models.sampling import NegativeSampler

    drawn: list[int] = []
    original = NegativeSampler.sample

    def spy(self, users, n_negatives, generator):
        drawn.append(n_negatives)
        return original(self, users, n_negatives, generator)

    monkeypatch.setattr(NegativeSampler, "sample", spy)
    matrix, _, _ = block_data()
    GMF(GMFConfig(n_factors=4, epochs=1, n_negatives=7), CPU).fit(Interactions.from_frame(to_frame(matrix)))
    assert drawn and set(drawn) == {7}


def test_network_rejects_a_bad_tower() -> None:
    with pytest.raises(ValueError, match="even input width"):
        NCFNetwork(3, 3, "mlp", 4, (7, 4), 0.1)
