"""EASE against an independent numpy closed form, and on block-structured data."""

from typing import Literal

import numpy as np
import polars as pl
import pytest
import torch

from recsys_models.ease import EASE, EASEConfig, _cholesky_in_place, _inverse_from_factor, _mirror_upper_triangle
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions


def frame_from_matrix(matrix: np.ndarray) -> pl.DataFrame:
    users, items = np.nonzero(matrix)
    return pl.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": matrix[users, items].astype(np.float64),
            "timestamp": np.arange(users.size),
        }
    )


def reference_weights(matrix: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), eq. 8, in float64: B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1."""
    inverse = np.linalg.inv(matrix.T @ matrix + l2 * np.eye(matrix.shape[1]))
    return np.eye(matrix.shape[1]) - inverse / np.diag(inverse)


TINY = np.array(
    [
        [5, 3, 0, 1, 0],
        [4, 0, 0, 1, 2],
        [1, 1, 0, 5, 0],
        [0, 0, 5, 4, 0],
        [0, 1, 5, 4, 3],
        [2, 0, 0, 0, 5],
    ],
    dtype=np.float64,
)


@pytest.mark.parametrize("values", ["binary", "rating"])
def test_scores_match_the_closed_form(values: Literal["binary", "rating"]) -> None:
    matrix = TINY if values == "rating" else (TINY > 0).astype(np.float64)
    model = EASE(EASEConfig(l2=2.0, values=values), TrainingOptions(device="cpu"))
    model.fit(Interactions.from_frame(frame_from_matrix(TINY)))
    weights = reference_weights(matrix, 2.0)
    np.testing.assert_allclose(np.diag(weights), 0.0, atol=1e-12)
    np.testing.assert_allclose(model.score(np.arange(6)), matrix @ weights, rtol=1e-4, atol=1e-5)


def test_an_item_without_interactions_scores_zero_and_changes_nothing() -> None:
    frame = frame_from_matrix(TINY)
    items = IdVocabulary(np.array([1, 2, 3, 4, 5, 99]))  # item 99 is in the vocabulary, never interacted
    model = EASE(EASEConfig(l2=2.0, values="binary"), TrainingOptions(device="cpu"))
    model.fit(Interactions.from_frame(frame, IdVocabulary.from_values(frame["user_id"].to_numpy()), items))
    scores = model.score(np.arange(6))
    binary = (TINY > 0).astype(np.float64)
    np.testing.assert_allclose(scores[:, 5], 0.0)
    np.testing.assert_allclose(scores[:, :5], binary @ reference_weights(binary, 2.0), rtol=1e-4, atol=1e-5)


def test_recommends_the_missing_item_of_the_users_block() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 80, 20
    block_of_user, block_of_item = np.arange(n_users) % 2, np.arange(n_items) % 2
    matrix = (block_of_user[:, None] == block_of_item[None, :]) & (rng.random((n_users, n_items)) < 0.7)
    model = EASE(EASEConfig(l2=5.0, values="binary"), TrainingOptions(device="cpu")).fit(
        Interactions.from_frame(frame_from_matrix(matrix.astype(np.float64)))
    )
    users = model.users.ids - 1  # raw ids are row + 1
    own_block = block_of_user[users][:, None] == block_of_item[None, :]
    has_unseen_own_item = (own_block & ~matrix[users]).any(axis=1)
    top, _ = model.recommend(np.flatnonzero(has_unseen_own_item), k=1)
    assert has_unseen_own_item.sum() > 60
    assert (block_of_item[model.items.ids[top[:, 0]] - 1] == block_of_user[users[has_unseen_own_item]]).all()


def test_l2_must_be_positive() -> None:
    with pytest.raises(ValueError, match="l2"):
        EASEConfig(l2=0.0)


def test_the_inverse_is_mirrored_block_by_block_into_a_symmetric_matrix() -> None:
    upper = torch.randn(203, 203, generator=torch.Generator().manual_seed(0)).triu()
    matrix = upper + torch.randn(203, 203).tril(-1)  # garbage below the diagonal, as potri leaves it
    _mirror_upper_triangle(matrix, block=64)
    assert torch.equal(matrix, upper + upper.triu(1).T)


def test_the_cpu_lapack_inverse_matches_numpy() -> None:
    rows = np.random.default_rng(3).random((80, 50)).astype(np.float32)
    gram = torch.from_numpy(rows.T @ rows)
    expected = np.linalg.inv(rows.T.astype(np.float64) @ rows + 2.0 * np.eye(50))
    inverse = _inverse_from_factor(_cholesky_in_place(gram.clone(), 2.0))
    np.testing.assert_allclose(inverse.numpy(), expected, rtol=1e-3, atol=1e-5)


def test_a_catalogue_beyond_max_items_is_modelled_on_its_most_rated_items() -> None:
    counts = (TINY > 0).sum(axis=0)  # 4, 3, 2, 5, 3 interactions: the top three are items 0, 3 and 1 (tie to 1)
    assert list(counts) == [4, 3, 2, 5, 3]
    model = EASE(EASEConfig(l2=2.0, values="rating", max_items=3), TrainingOptions(device="cpu"))
    model.fit(Interactions.from_frame(frame_from_matrix(TINY)))
    kept = [0, 1, 3]
    scores = model.score(np.arange(6))
    np.testing.assert_allclose(scores[:, [2, 4]], 0.0)
    expected = TINY[:, kept] @ reference_weights(TINY[:, kept], 2.0)
    np.testing.assert_allclose(scores[:, kept], expected, rtol=1e-4, atol=1e-5)
    every_item = EASE(EASEConfig(l2=2.0, values="rating", max_items=None), TrainingOptions(device="cpu"))
    assert np.count_nonzero(every_item.fit(Interactions.from_frame(frame_from_matrix(TINY))).score(np.arange(6))[:, 2])
