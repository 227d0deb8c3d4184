"""Shared ranking losses and negative sampling: known values, shapes, and sampling distributions."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models.losses import binary_cross_entropy_loss, bpr_loss
from recsys_models.sampling import NegativeSampler, popularity_weights


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return request.param


def generator_on(device: str, seed: int = 0) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# --- losses -------------------------------------------------------------------------------
def test_bpr_loss_matches_hand_computed_values() -> None:
    loss = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2, rel=1e-6)


def test_bpr_loss_broadcasts_several_negatives_and_honours_the_mask() -> None:
    positive = torch.tensor([1.0, 3.0])
    negative = torch.tensor([[0.0, 2.0], [1.0, 5.0]])
    full = bpr_loss(positive, negative)
    expected = np.mean([softplus(-1.0), softplus(1.0), softplus(-2.0), softplus(2.0)])
    assert full.item() == pytest.approx(expected, rel=1e-6)
    masked = bpr_loss(positive, negative, mask=torch.tensor([[True, False], [True, False]]))
    assert masked.item() == pytest.approx((softplus(-1.0) + softplus(-2.0)) / 2, rel=1e-6)


def test_bpr_loss_gradient_pushes_positives_up_and_negatives_down() -> None:
    positive = torch.zeros(3, requires_grad=True)
    negative = torch.zeros(3, 2, requires_grad=True)
    bpr_loss(positive, negative).backward()
    assert (positive.grad < 0).all() and (negative.grad > 0).all()


def test_binary_cross_entropy_loss_matches_hand_computed_values() -> None:
    loss = binary_cross_entropy_loss(torch.tensor([0.0, 2.0]), torch.tensor([[0.0, -1.0], [1.0, 3.0]]))
    positive_term = (softplus(0.0) + softplus(-2.0)) / 2
    negative_term = (softplus(0.0) + softplus(-1.0) + softplus(1.0) + softplus(3.0)) / 4
    assert loss.item() == pytest.approx(positive_term + negative_term, rel=1e-6)


def test_losses_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="positive must be"):
        bpr_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="mask has shape"):
        bpr_loss(torch.zeros(3), torch.zeros(3, 2), mask=torch.ones(3, dtype=torch.bool))


# --- sampling -------------------------------------------------------------------------------
def random_positives(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(n_users, n_items, density=density, format="csr", random_state=seed)
    matrix.data[:] = 1.0
    return matrix


def test_popularity_weights_are_counts_to_the_power_alpha() -> None:
    counts = np.array([0, 1, 4, 9])
    np.testing.assert_allclose(popularity_weights(counts, 0.5), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(popularity_weights(counts, 0.0), np.ones(4))  # alpha 0 is uniform over every item
    with pytest.raises(ValueError, match="alpha"):
        popularity_weights(counts, -1.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_rejection_never_returns_a_positive(device: str, weighted: bool) -> None:
    positives = random_positives(50, 30, density=0.6, seed=1)  # dense users: many draws are rejected
    weights = popularity_weights(np.asarray(positives.sum(0)).ravel() + 1, 1.0) if weighted else None
    sampler = NegativeSampler(30, weights, positives, device=device)
    users = torch.arange(50, device=device).repeat(40)
    negatives = sampler.sample(users, 5, generator_on(device)).cpu().numpy()
    assert negatives.shape == (2000, 5)
    hit = np.asarray(positives[np.repeat(users.cpu().numpy(), 5), negatives.ravel()]).ravel()
    assert not hit.any()


def test_without_rejection_positives_do_occur() -> None:
    positives = random_positives(20, 10, density=0.5, seed=2)
    negatives = NegativeSampler(10).sample(torch.arange(20).repeat(20), 3, generator_on("cpu")).numpy()
    hit = np.asarray(positives[np.repeat(np.tile(np.arange(20), 20), 3), negatives.ravel()]).ravel()
    assert hit.any()


def test_popularity_sampling_frequencies_follow_count_to_the_alpha() -> None:
    counts = np.array([1, 2, 5, 10, 20, 50, 0, 100])
    alpha, n = 0.75, 400_000
    sampler = NegativeSampler(counts.size, popularity_weights(counts, alpha))
    drawn = sampler.sample(torch.zeros(n, dtype=torch.int64), 1, generator_on("cpu")).numpy().ravel()
    frequency = np.bincount(drawn, minlength=counts.size) / n
    expected = counts**alpha / (counts**alpha).sum()
    assert frequency[6] == 0.0  # an item with no count is never drawn
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n)  # four binomial standard errors per item
    assert (np.abs(frequency - expected) <= tolerance).all(), (frequency, expected)


def test_rejection_samples_the_weights_restricted_to_the_users_negatives() -> None:
    weights = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    positives = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [1, 1, 0, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(5, weights, positives)
    n = 200_000
    drawn = sampler.sample(torch.tensor([0, 1]), n, generator_on("cpu")).numpy()
    for user, allowed in ((0, [0, 1, 2, 3]), (1, [2, 3, 4])):
        expected = np.zeros(5)
        expected[allowed] = weights[allowed] / weights[allowed].sum()
        frequency = np.bincount(drawn[user], minlength=5) / n
        np.testing.assert_allclose(frequency, expected, atol=0.005)


def test_uniform_sampling_is_uniform() -> None:
    drawn = NegativeSampler(8).sample(torch.zeros(160_000, dtype=torch.int64), 1, generator_on("cpu")).numpy()
    np.testing.assert_allclose(np.bincount(drawn.ravel(), minlength=8) / drawn.size, np.full(8, 1 / 8), atol=0.004)


def test_same_generator_seed_gives_the_same_samples() -> None:
    sampler = NegativeSampler(100, popularity_weights(np.arange(100), 0.5), random_positives(10, 100, 0.2, 3))
    users = torch.arange(10).repeat(10)
    first = sampler.sample(users, 4, generator_on("cpu", seed=7))
    assert torch.equal(first, sampler.sample(users, 4, generator_on("cpu", seed=7)))
    assert not torch.equal(first, sampler.sample(users, 4, generator_on("cpu", seed=8)))


def test_a_user_without_any_negative_is_a_clear_error() -> None:
    positives = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(3, positives=positives)
    assert sampler.has_negatives(torch.tensor([0, 1])).tolist() == [False, True]
    assert set(sampler.sample(torch.tensor([1] * 50), 1, generator_on("cpu")).numpy().ravel()) <= {1, 2}
    with pytest.raises(ValueError, match="user 0 has no item left"):
        sampler.sample(torch.tensor([1, 0]), 1, generator_on("cpu"))


def test_positives_holding_all_the_weight_leave_no_negative() -> None:
    # item 2 has weight 0 (never drawn), so user 0 with items 0 and 1 has nothing to draw
    positives = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(3, weights=np.array([1.0, 2.0, 0.0]), positives=positives)
    assert sampler.has_negatives(torch.tensor([0, 1])).tolist() == [False, True]
    assert (sampler.sample(torch.tensor([1] * 20), 2, generator_on("cpu")) == 1).all()


def test_sampler_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="weights must be 3"):
        NegativeSampler(3, weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="not all be zero"):
        NegativeSampler(3, weights=np.zeros(3))
    with pytest.raises(ValueError, match="columns"):
        NegativeSampler(3, positives=sp.csr_matrix((2, 4)))
