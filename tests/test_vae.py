"""Mult-VAE and Mult-DAE on synthetic data with a known answer: block structure, fold-in, annealing."""

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.testing import block_data, own_block_share, split_by_time, to_frame
from recsys_models.vae import MultDAE, MultDAEConfig, MultVAE, MultVAEConfig
from recsys_models.vae.model import DeviceRows
from recsys_models.vae.network import MultVAENetwork

CPU = TrainingOptions(device="cpu", seed=0)
SMALL: dict[str, Any] = {"hidden": (32,), "latent": 8, "batch_size": 16, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def block_vae() -> tuple[MultVAE, np.ndarray, np.ndarray, np.ndarray]:
    matrix, user_block, item_block = block_data()
    model = MultVAE(MultVAEConfig(epochs=30, anneal_epochs=10, **SMALL), CPU)
    return model.fit(Interactions.from_frame(to_frame(matrix))), matrix, user_block, item_block


@pytest.mark.parametrize("model_class", [MultVAE, MultDAE])
def test_finds_block_structure(model_class, block_vae) -> None:
    matrix, user_block, item_block = block_data()
    if model_class is MultVAE:
        model = block_vae[0]
    else:
        model = MultDAE(MultDAEConfig(epochs=30, **SMALL), CPU).fit(Interactions.from_frame(to_frame(matrix)))
    assert own_block_share(model, matrix, user_block, item_block) > 0.95
    losses = [record["train_loss"] for record in model.history]
    assert losses[-1] < losses[0]
    assert not model.predicts_ratings


def test_kl_weight_rises_linearly_to_the_cap(block_vae) -> None:
    betas = [record["beta"] for record in block_vae[0].history]
    assert betas[0] < 0.2 * 0.2 and betas == sorted(betas)
    assert betas[9:] == [0.2] * (len(betas) - 9)  # capped once anneal_epochs have passed (last batch of epoch 10)
    assert all(record["kl"] > 0 for record in block_vae[0].history)


def test_fold_in_scores_a_history_the_model_never_saw(block_vae) -> None:
    model, _, _, item_block = block_vae
    even = np.flatnonzero(item_block[model.items.ids - 1] == 0)
    history = sp.csr_matrix((np.ones(5), (np.zeros(5, dtype=int), even[:5])), shape=(1, model.n_items))
    scores = model.score_rows(history)[0]
    unseen = np.setdiff1d(np.arange(model.n_items), even[:5])
    top = unseen[np.argsort(-scores[unseen])[:5]]
    assert (item_block[model.items.ids[top] - 1] == 0).all()
    with pytest.raises(ValueError, match="columns"):
        model.score_rows(sp.csr_matrix((1, model.n_items + 1)))


def test_score_is_the_fold_in_of_the_seen_history(block_vae) -> None:
    model = block_vae[0]
    users = np.array([0, 5, 9])
    np.testing.assert_allclose(model.score(users), model.score_rows(model.seen[users]), rtol=1e-6)


def test_early_stopping_on_validation_ndcg_then_refit() -> None:
    matrix, _, _ = block_data(seed=3)
    train, valid = split_by_time(to_frame(matrix))
    model = MultVAE(MultVAEConfig(epochs=40, patience=3, anneal_epochs=5, **SMALL), CPU).fit(train, valid)
    validated = [record for record in model.history if "valid_ndcg_at_10" in record]
    refit = [record for record in model.history if "refit_train_loss" in record]
    best = max(validated, key=lambda record: record["valid_ndcg_at_10"])
    assert best["valid_ndcg_at_10"] > 0.3
    assert len(refit) == best["epoch"]


def test_dropout_and_sampling_only_in_training() -> None:
    generator = torch.Generator().manual_seed(0)
    network = MultVAENetwork(6, (4,), 2, variational=True, dropout=0.5, generator=generator)
    items, offsets = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2]), torch.tensor([0, 6])
    network.train()
    first = network(items, offsets, torch.Generator().manual_seed(1))[0]
    second = network(items, offsets, torch.Generator().manual_seed(2))[0]
    assert not torch.allclose(first, second)
    network.eval()
    torch.testing.assert_close(network(items, offsets, torch.Generator().manual_seed(1))[0], network(items, offsets)[0])


def test_first_layer_over_entries_equals_the_dense_product_of_the_normalised_row() -> None:
    network = MultVAENetwork(6, (4,), 2, variational=False, dropout=0.5, generator=torch.Generator().manual_seed(0))
    network.eval()
    dense = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    normalised = dense / dense.norm(dim=1, keepdim=True)
    expected = network.encoder[0](torch.tanh(normalised @ network.input_weight + network.input_bias))
    mean, log_variance = network.encode(torch.tensor([0, 1, 4, 5, 2]), torch.tensor([0, 4]))
    torch.testing.assert_close(mean, expected)
    assert log_variance is None


def test_device_rows_are_the_dense_rows_of_the_matrix() -> None:
    matrix = sp.random(7, 5, density=0.4, format="csr", random_state=0)
    device_rows = DeviceRows(matrix, "cpu")
    rows = device_rows.dense(torch.tensor([4, 0, 4, 6]))
    expected = (matrix.toarray()[[4, 0, 4, 6]] != 0).astype(np.float32)
    np.testing.assert_array_equal(rows.numpy(), expected)
    columns, offsets = device_rows.entries(torch.tensor([4, 0]))
    assert columns.tolist() == [*matrix[4].indices, *matrix[0].indices] and offsets.tolist() == [0, matrix[4].nnz]


def test_no_interaction_left_is_a_clear_error() -> None:
    matrix, _, _ = block_data()
    with pytest.raises(ValueError, match="no user has an interaction"):
        MultDAE(MultDAEConfig(min_rating=6.0, epochs=1), CPU).fit(Interactions.from_frame(to_frame(matrix)))
