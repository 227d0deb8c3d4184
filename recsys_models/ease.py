"""EASE: an item-item model in closed form (Steck 2019, "Embarrassingly Shallow Autoencoders for
Sparse Data").

B = argmin |X - X B|^2 + lambda |B|^2 subject to diag(B) = 0 has the solution
P = (X^T X + lambda I)^-1, B_ij = -P_ij / P_jj, B_jj = 0; a user's scores are X_u B. The Gram
matrix is built over the items with interactions only: the heaviest users through dense BLAS
products, the rest through a sparse product; the inverse comes from a float32 Cholesky factor
(LAPACK potrf and potri: SciPy's OpenBLAS on the CPU, torch.linalg on CUDA), computed in place.
An item without interactions has a zero row and column in the closed form, hence score 0, which
is what it gets here. A catalogue larger than `max_items` (default 20k) is modelled on its most
interacted-with items only, "EASE on the top items": the others score 0 as well.

Defaults (`--validation` of benchmarks/protocol_quality.py: the protocol re-applied to the
training part, test never seen; NDCG@10 on that inner test, seed 42):
grid l2 in {20, 50, 100, 200, 500, 1000, 2000} x values in {binary, rating}, then l2 in
{3000, 5000, 10000} for rating input. Larger lambda with rating input wins on P4 on both data
sets and ties within one standard error (~0.006) on P3.

    NDCG@10           P4 ml-100k  P4 ml-small  P3 ml-100k  P3 ml-small
    binary, l2 500      0.153       0.115        0.067       0.040
    binary, l2 100      0.150       0.114        0.066       0.044
    rating, l2 1000     0.163       0.127        0.067       0.045
    rating, l2 3000     0.164       0.128        0.067       0.045   <- default
    rating, l2 10000    0.164       0.129        0.065       0.040
"""

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.sparse_tensors import torch_csr
from recsys_models.tuning import Choice, FloatRange, SearchSpace

SPARSE_PRODUCT_ENTRIES = 1 << 24  # sum of squared activities per chunk of the light users' product


class EASEConfig(BaseModel):
    """Hyperparameters of EASE; defaults from the validation search in the module docstring."""

    search_space: ClassVar[SearchSpace] = {
        "l2": FloatRange(10.0, 1e5, log=True),
        "values": Choice(("binary", "rating")),
    }

    model_config = ConfigDict(frozen=True, extra="forbid")

    l2: PositiveFloat = Field(default=3000.0, description="Ridge weight lambda added to the Gram diagonal.")
    values: Literal["binary", "rating"] = Field(
        default="rating", description="X holds 1 per interaction, or the rating value."
    )
    gram_block: PositiveInt = Field(
        default=1024,
        description="Heavy users made dense per block of the Gram product; bounds memory (x items floats).",
    )
    dense_share: float = Field(
        default=0.02,
        gt=0.0,
        le=1.0,
        description="Users with more than this share of the items enter the Gram matrix by a dense product.",
    )
    max_items: PositiveInt | None = Field(
        default=20_000,
        description="Model only this many items, the most interacted with (the fit holds max_items^2 floats: "
        "1.6 GB for 20k); the others score 0. None: every item with interactions.",
    )


def _gram(matrix: sp.csr_matrix, block: int, dense_share: float, device: str) -> torch.Tensor:
    """Dense float32 X^T X on `device`, split by user activity.

    Heavy users (more than `dense_share` of the items) hold most of the sum of squared activities
    that a sparse product pays for: their rows enter as dense blocks of `block` users through one
    BLAS product each. The light users' sparse product, in chunks of bounded size, is added entry
    by entry.
    """
    n_items = matrix.shape[1]
    activity = np.diff(matrix.indptr)
    heavy = activity > dense_share * n_items
    gram = torch.zeros((n_items, n_items), dtype=torch.float32, device=device)
    heavy_rows = np.flatnonzero(heavy)
    for start in range(0, heavy_rows.size, block):
        rows = torch.from_numpy(matrix[heavy_rows[start : start + block]].toarray()).to(device)
        gram.addmm_(rows.T, rows)
    light = matrix[~heavy]
    cost = np.cumsum(np.diff(light.indptr).astype(np.int64) ** 2)  # entries a product up to each row makes
    n_chunks = -(-int(cost[-1]) // SPARSE_PRODUCT_ENTRIES) if cost.size else 0
    edges = np.searchsorted(cost, np.arange(1, n_chunks) * SPARSE_PRODUCT_ENTRIES)
    bounds = np.unique(np.concatenate([[0], edges, [light.shape[0]]]))
    flat = gram.view(-1)
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        product = (light[first:last].T @ light[first:last]).tocoo()
        keys = torch.from_numpy(product.row.astype(np.int64) * n_items + product.col).to(device)
        flat.index_add_(0, keys, torch.from_numpy(product.data.astype(np.float32)).to(device))
    return gram


def _cholesky_in_place(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """The Cholesky factor of gram + l2 I, overwriting `gram` (LAPACK potrf works in place).

    On the CPU through SciPy's OpenBLAS, on as many threads as torch uses (1.8 s against torch's
    2.5 s for 10k items on 2 cores); on CUDA through torch.linalg. On the CPU the factor sits in
    the upper triangle of the row-major tensor (the lower one of its column-major view).
    """
    gram.diagonal().add_(l2)
    if gram.device.type == "cpu":
        with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
            _, info = lapack.spotrf(gram.numpy().T, lower=1, overwrite_a=1, clean=0)
    else:
        info_tensor = torch.empty((), dtype=torch.int32, device=gram.device)
        torch.linalg.cholesky_ex(gram, out=(gram, info_tensor))
        info = int(info_tensor.item())
    if info:
        raise FloatingPointError(f"ease: X^T X + {l2} I is not positive definite")
    return gram


def _inverse_from_factor(factor: torch.Tensor) -> torch.Tensor:
    """P = (L L^T)^-1, overwriting the factor: potri (3.4 s on the CPU for 10k items against torch's 5.3 s)."""
    if factor.device.type != "cpu":
        return torch.cholesky_inverse(factor, out=factor)
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        _, info = lapack.spotri(factor.numpy().T, lower=1, overwrite_c=1)
    if info:
        raise FloatingPointError("ease: the Cholesky factor is singular")
    _mirror_upper_triangle(factor)
    return factor


def _mirror_upper_triangle(matrix: torch.Tensor, block: int = 2048) -> None:
    """Copy the upper triangle onto the lower one, in place, a block of rows at a time."""
    for start in range(0, matrix.shape[0], block):
        stop = min(start + block, matrix.shape[0])
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        diagonal = matrix[start:stop, start:stop]
        diagonal.copy_(diagonal.triu() + diagonal.triu(1).T)


def _weights_from_factor(factor: torch.Tensor) -> torch.Tensor:
    """B from the Cholesky factor of P^-1, overwriting it: P by potri, then -P_ij / P_jj, zero diagonal.

    All of it in the factor's memory: the fit holds one n x n matrix instead of three.
    """
    weights = _inverse_from_factor(factor)
    weights /= -weights.diagonal().clone()  # column j divided by -P_jj
    weights.fill_diagonal_(0.0)
    return weights


def _modelled_items(counts: np.ndarray, max_items: int | None) -> np.ndarray:
    """Indices (ascending) of the items with interactions, or of the `max_items` most interacted
    with (ties to the lower index)."""
    active = np.flatnonzero(counts)
    if max_items is None or active.size <= max_items:
        return active
    by_count = active[np.argsort(-counts[active], kind="stable")]
    return np.sort(by_count[:max_items])


class EASE(Recommender):
    """Closed-form item-item regression with a zero diagonal; ranks, does not rate."""

    family = "ease"
    config_type = EASEConfig
    config: EASEConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        matrix = train.tocsr(values=self.config.values)
        if self.config.values == "binary":
            matrix.data[:] = 1.0  # duplicate rows of a pair count once
        active = _modelled_items(np.bincount(matrix.indices, minlength=matrix.shape[1]), self.config.max_items)
        history = sp.csr_matrix(matrix[:, active], dtype=np.float32)
        device = self.options.torch_device()
        gram = _gram(history, self.config.gram_block, self.config.dense_share, device)
        weights = _weights_from_factor(_cholesky_in_place(gram, self.config.l2))
        self._weights, self._active, self._history = weights, active, history

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self._score_rows(self._history[self._check_users(user_indices)])

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """X_h B for the history's row X_h (ratings or ones, as fitted): exact."""
        rows = history.rows.tocsr(values=self.config.values)
        if self.config.values == "binary":
            rows.data[:] = 1.0
        return self._score_rows(sp.csr_matrix(rows[:, self._active], dtype=np.float32))

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of user rows over the modelled items (X_u B), 0 on the other items."""
        active_scores = torch.sparse.mm(torch_csr(rows, self._weights.device), self._weights).cpu().numpy()
        scores = np.zeros((rows.shape[0], self.n_items), dtype=np.float32)
        scores[:, self._active] = active_scores
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "weights": self._weights.cpu().numpy(),
            "active_items": self._active,
            "history_indptr": self._history.indptr,
            "history_indices": self._history.indices,
            "history_data": self._history.data,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._weights = torch.from_numpy(state["weights"]).to(self.options.torch_device())
        self._active = state["active_items"]
        indptr = state["history_indptr"]
        self._history = sp.csr_matrix(
            (state["history_data"], state["history_indices"], indptr), shape=(indptr.size - 1, self._active.size)
        )
