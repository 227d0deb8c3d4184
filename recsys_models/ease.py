"""EASE: an item-item model in closed form (Steck 2019, "Embarrassingly Shallow Autoencoders for
Sparse Data").

B = argmin |X - X B|^2 + lambda |B|^2 subject to diag(B) = 0 has the solution
P = (X^T X + lambda I)^-1, B_ij = -P_ij / P_jj, B_jj = 0; a user's scores are X_u B. The Gram
matrix is built over the items with interactions only, as sparse X^T times dense column blocks
of X; the inverse comes from a float32 Cholesky factor (torch.linalg, CPU or CUDA), computed in
place. An item without interactions has a zero row and column in the closed form, hence score
0, which is what it gets here.

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

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.interactions import Interactions
from recsys_models.sparse_tensors import torch_csr


class EASEConfig(BaseModel):
    """Hyperparameters of EASE; defaults from the validation search in the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    l2: PositiveFloat = Field(default=3000.0, description="Ridge weight lambda added to the Gram diagonal.")
    values: Literal["binary", "rating"] = Field(
        default="rating", description="X holds 1 per interaction, or the rating value."
    )
    gram_block: PositiveInt = Field(
        default=2048, description="Columns of X made dense per Gram product; bounds memory (x users floats)."
    )


def _gram(matrix: sp.csr_matrix, block: int, device: str) -> torch.Tensor:
    """Dense float32 X^T X on `device`: sparse X^T times dense column blocks of X."""
    sparse = torch_csr(matrix.T, device)
    by_column = matrix.tocsc()
    n_items = matrix.shape[1]
    gram = torch.empty((n_items, n_items), dtype=torch.float32, device=device)
    for start in range(0, n_items, block):
        columns = torch.from_numpy(by_column[:, start : start + block].toarray()).to(device)
        gram[:, start : start + block] = torch.sparse.mm(sparse, columns)
    return gram


class EASE(Recommender):
    """Closed-form item-item regression with a zero diagonal; ranks, does not rate."""

    family = "ease"
    config_type = EASEConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        matrix = train.tocsr(values=self.config.values)
        if self.config.values == "binary":
            matrix.data[:] = 1.0  # duplicate rows of a pair count once
        active = np.flatnonzero(np.diff(matrix.tocsc().indptr))
        history = sp.csr_matrix(matrix[:, active], dtype=np.float32)
        device = self.options.torch_device()
        gram = _gram(history, self.config.gram_block, device)
        gram.diagonal().add_(self.config.l2)
        # LAPACK's potrf and potri work in place: with the input as `out`, the factor and then the
        # inverse overwrite the Gram matrix, so the fit holds one n x n matrix instead of three
        info = torch.empty((), dtype=torch.int32, device=device)
        torch.linalg.cholesky_ex(gram, out=(gram, info))
        if info.item():
            raise FloatingPointError(f"{self.family}: X^T X + {self.config.l2} I is not positive definite")
        weights = torch.cholesky_inverse(gram, out=gram)
        weights /= -weights.diagonal().clone()  # column j divided by -P_jj
        weights.fill_diagonal_(0.0)
        self._weights, self._active, self._history = weights, active, history

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        history = torch_csr(self._history[users], self._weights.device)
        active_scores = torch.sparse.mm(history, self._weights).cpu().numpy()
        scores = np.zeros((users.size, self.n_items), dtype=np.float32)
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
