"""Implicit ALS: the batched solvers against the normal equations, and a planted low-rank matrix."""

from typing import Literal

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from recsys_models.als import ALS, ALSConfig
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions
from recsys_models.sparse_tensors import torch_csr

CPU = TrainingOptions(device="cpu", seed=0)


def frame(users: np.ndarray, items: np.ndarray, ratings: np.ndarray | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": np.ones(users.size) if ratings is None else ratings.astype(np.float64),
            "timestamp": np.arange(users.size),
        }
    )


def normal_equations(confidence: sp.csr_matrix, fixed: np.ndarray, l2: float) -> np.ndarray:
    """Hu et al. (2008), eq. 4, row by row in float64: x_u = (Y^T C_u Y + l2 I)^-1 Y^T C_u p_u."""
    solutions = []
    for row in confidence.toarray().astype(np.float64):
        weight = np.diag(1.0 + row)
        preference = (row > 0).astype(np.float64)
        system = fixed.T @ weight @ fixed + l2 * np.eye(fixed.shape[1])
        solutions.append(np.linalg.solve(system, fixed.T @ weight @ preference))
    return np.array(solutions)


@pytest.fixture
def confidence() -> sp.csr_matrix:
    """c - 1 for 40 rows x 30 columns with degrees from 0 to 25 (both solver paths, and an empty row)."""
    rng = np.random.default_rng(3)
    dense = np.zeros((40, 30), dtype=np.float32)
    for row, degree in enumerate(np.linspace(0, 25, 40).astype(int)):
        dense[row, rng.choice(30, degree, replace=False)] = rng.uniform(0.5, 8.0, degree)
    return sp.csr_matrix(dense)


def test_exact_solver_matches_the_normal_equations(confidence: sp.csr_matrix) -> None:
    # degrees 0 to 25 around 6 factors: Woodbury blocks, Cholesky blocks and an empty row
    model = ALS(ALSConfig(n_factors=6, regularization=0.3, solver="cholesky", block_entries=40), CPU)
    fixed = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    solved = model._solve_exact(confidence, fixed, torch.zeros(40, 6)).numpy()
    np.testing.assert_allclose(solved, normal_equations(confidence, fixed.numpy(), 0.3), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(solved[0], 0.0)  # an empty row


def test_conjugate_gradient_converges_to_the_normal_equations(confidence: sp.csr_matrix) -> None:
    model = ALS(ALSConfig(n_factors=6, regularization=0.3, solver="cg", cg_steps=25), CPU)
    fixed = torch.randn(30, 6, generator=torch.Generator().manual_seed(1))
    start = torch.randn(40, 6, generator=torch.Generator().manual_seed(2))
    solved = model._solve_cg(torch_csr(confidence, "cpu"), fixed, start).numpy()
    np.testing.assert_allclose(solved, normal_equations(confidence, fixed.numpy(), 0.3), rtol=1e-3, atol=1e-3)


def planted_low_rank(n_users: int = 300, n_items: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interactions drawn with probability 0.6 u . v, u and v sparse mixtures of 3 tastes; (matrix, probability)."""
    rng = np.random.default_rng(seed)
    probability = 0.6 * rng.dirichlet(np.full(3, 0.2), n_users) @ rng.dirichlet(np.full(3, 0.2), n_items).T
    return rng.random((n_users, n_items)) < probability, probability


def held_out_auc(scores: np.ndarray, held_out: np.ndarray, negatives: np.ndarray) -> float:
    """Mean over users of the share of (held-out positive, negative) pairs ranked strictly correctly."""
    users = np.flatnonzero(held_out.any(axis=1) & negatives.any(axis=1))
    return float(np.mean([(scores[u, held_out[u]][:, None] > scores[u, negatives[u]][None, :]).mean() for u in users]))


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_reconstructs_a_planted_low_rank_matrix(solver: Literal["cholesky", "cg"]) -> None:
    interactions, probability = planted_low_rank()
    held_out = interactions & (np.random.default_rng(1).random(interactions.shape) < 0.2)
    train = interactions & ~held_out
    users, items = np.nonzero(train)
    vocabularies = IdVocabulary(np.arange(1, 301)), IdVocabulary(np.arange(1, 121))
    data = Interactions.from_frame(frame(users, items), *vocabularies)
    model = ALS(ALSConfig(n_factors=3, regularization=1.0, alpha=5.0, iterations=10, solver=solver), CPU).fit(data)
    negatives = ~interactions
    auc = held_out_auc(model.score(np.arange(300)), held_out, negatives)
    oracle = held_out_auc(probability, held_out, negatives)  # the planted probabilities themselves
    popularity = held_out_auc(np.broadcast_to(train.sum(axis=0), train.shape), held_out, negatives)
    assert auc > oracle - 0.04 and auc > popularity + 0.2


def test_cg_with_enough_steps_fits_the_same_model_as_cholesky() -> None:
    users, items = np.nonzero(planted_low_rank(n_users=100, n_items=50, seed=2)[0])
    data = Interactions.from_frame(frame(users, items))
    exact = ALS(ALSConfig(n_factors=4, iterations=5, alpha=2.0, solver="cholesky"), CPU).fit(data)
    cg = ALS(ALSConfig(n_factors=4, iterations=5, alpha=2.0, solver="cg", cg_steps=12), CPU).fit(data)
    every_user = np.arange(len(exact.users))
    np.testing.assert_allclose(cg.score(every_user), exact.score(every_user), rtol=1e-3, atol=1e-3)


def test_rating_confidence_weights_high_ratings_more() -> None:
    # users 1-20 rated items 1 and 2; item 1 always highly, item 2 low; a new user with only item 3
    users = np.concatenate([np.repeat(np.arange(20), 3), [20]])
    items = np.concatenate([np.tile([0, 1, 2], 20), [2]])
    ratings = np.concatenate([np.tile([5.0, 1.0, 3.0], 20), [3.0]])
    data = Interactions.from_frame(frame(users, items, ratings))
    config = ALSConfig(n_factors=2, alpha=5.0, confidence_from="rating", regularization=0.1)
    scores = ALS(config, CPU).fit(data).score(np.array([20]))[0]
    assert scores[0] > scores[1]


def test_a_user_without_training_rows_scores_zero() -> None:
    users, items = np.nonzero(planted_low_rank(n_users=30, n_items=20)[0])
    data = Interactions.from_frame(frame(users, items), IdVocabulary(np.arange(1, 32)), IdVocabulary(np.arange(1, 21)))
    model = ALS(ALSConfig(n_factors=4, iterations=3), CPU).fit(data)
    np.testing.assert_array_equal(model.score(np.array([30])), 0.0)


def test_negative_ratings_cannot_give_confidence() -> None:
    data = Interactions.from_frame(frame(np.array([0, 1]), np.array([0, 1]), np.array([-1.0, 2.0])))
    with pytest.raises(ValueError, match="negative ratings"):
        ALS(ALSConfig(confidence_from="rating"), CPU).fit(data)
