"""Shared ranking losses and negative sampling: known values, shapes, and sampling distributions."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models import sampling
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
    assert positive.grad is not None and negative.grad is not None  # set by backward()
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
def test_rejection_never_returns_a_positive(device: str, weighted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "EXACT_DRAW_FLOATS", 90)  # exact draws in chunks of three users
    positives = random_positives(50, 30, density=0.6, seed=1)  # dense users: many draws reach the exact path
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


def test_a_user_holding_nearly_all_the_weight_gets_exact_draws() -> None:
    # regression: on 1M synthetic ratings a user with 9,990 of 10,000 items made rejection give up;
    # here rejection almost never succeeds (free weight 1e-4), so the exact fallback does the work
    weights = np.full(1000, 10.0)
    weights[[3, 500, 999]] = [1e-3, 2e-3, 3e-3]
    dense = np.ones((2, 1000), dtype=np.float32)
    dense[0, [3, 500, 999]] = 0.0  # user 0 holds everything but three light items
    dense[1, 10:] = 0.0  # user 1 is an ordinary user
    sampler = NegativeSampler(1000, weights, sp.csr_matrix(dense))
    drawn = sampler.sample(torch.tensor([0, 1]), 30_000, generator_on("cpu")).numpy()
    frequency = np.bincount(drawn[0], minlength=1000)[[3, 500, 999]] / 30_000
    np.testing.assert_allclose(frequency, [1 / 6, 2 / 6, 3 / 6], atol=0.015)
    assert set(np.unique(drawn[0])) <= {3, 500, 999}
    assert (drawn[1] >= 10).all()


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


def test_bitmap_and_key_search_find_the_same_positives(monkeypatch: pytest.MonkeyPatch) -> None:
    positives = random_positives(40, 70, density=0.3, seed=5)
    weights = popularity_weights(np.asarray(positives.sum(0)).ravel() + 1, 0.5)
    users = torch.arange(40).repeat(30)
    with_bitmap = NegativeSampler(70, weights, positives)
    monkeypatch.setattr(sampling, "BITMAP_MAX_BITS", 0)  # too small: binary search in the sorted keys
    with_keys = NegativeSampler(70, weights, positives)
    assert with_bitmap._bitmap is not None and with_keys._bitmap is None
    every_pair = torch.arange(40).repeat_interleave(70), torch.arange(70).repeat(40)
    expected = torch.from_numpy(positives.toarray().ravel() > 0)
    assert torch.equal(with_bitmap._is_positive(*every_pair), expected)
    assert torch.equal(with_keys._is_positive(*every_pair), expected)
    drawn = with_bitmap.sample(users, 5, generator_on("cpu", seed=2))
    assert torch.equal(drawn, with_keys.sample(users, 5, generator_on("cpu", seed=2)))


def test_exact_draws_follow_each_users_restricted_weights_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "EXACT_DRAW_FLOATS", 12)  # two users per chunk: five users span three chunks
    weights = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    dense = np.array(
        [[0, 1, 0, 0, 0, 1], [0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1]],
        dtype=np.float32,
    )
    sampler = NegativeSampler(6, weights, sp.csr_matrix(dense))
    n = 60_000
    users = torch.arange(5).repeat(n)[torch.randperm(5 * n, generator=generator_on("cpu", seed=1))]
    drawn = sampler._draw_excluding_positives(users, generator_on("cpu")).numpy()
    for user in range(5):
        allowed = weights * (dense[user] == 0)
        frequency = np.bincount(drawn[users.numpy() == user], minlength=6) / n
        np.testing.assert_allclose(frequency, allowed / allowed.sum(), atol=0.01)
