"""Implicit-feedback weighted ALS (Hu, Koren & Volinsky 2008, "Collaborative Filtering for Implicit
Feedback Datasets").

Preference p_ui = 1 for every interaction (0 elsewhere) with confidence c_ui = 1 + alpha * r_ui,
r_ui the rating or 1. With the other side Y fixed, x_u = (Y^T C_u Y + lambda I)^-1 Y^T C_u p_u,
where Y^T C_u Y = Y^T Y + Y^T (C_u - I) Y only touches the row's own items (the paper's
speed-up). Every iteration solves items, then users, so the user factors used for scoring fit
the final item factors. Deterministic for a seed. Two solvers:

- `cg` (default): a few conjugate-gradient steps per row from the previous factors (Takacs,
  Pilaszy & Tikk 2011, as in the implicit library), all rows at once: A x = x (Y^T Y + lambda I)
  + sum_i (c_ui - 1)(y_i . x_u) y_i is one sampled dense-dense product (SDDMM) and one
  sparse-dense product, so its cost grows with n_factors, not n_factors^3.
- `cholesky`: exact solves in blocks of rows ordered by degree and padded to the longest. Rows
  with fewer interactions than factors use the Woodbury identity (a degree x degree system); the
  others form Y^T Y + lambda I + Y_u^T (C_u - I) Y_u with one batched matmul and one batched
  Cholesky factorisation.

Defaults (`--validation` of benchmarks/protocol_quality.py: the protocol re-applied to the
training part, test never seen; NDCG@10 on that inner test, seed 42, 15 iterations, cg):
grid n_factors {32, 64, 128} x regularization {0.1, 1, 10, 50} x alpha {1, 3, 10, 30} (binary),
then n_factors {128, 256} x regularization {5, 10, 20} x alpha {0.5, 1, 2} x confidence_from
{binary, rating}. Strong regularisation, low alpha and rating confidence win; 256 factors add
nothing over 128. At the default, cholesky gives the same NDCG@10 (within 0.001) 4-10x slower.

    n_factors, lambda, alpha, r    P4 ml-100k  P4 ml-small  P3 ml-100k  P3 ml-small
    64, 1, 1, binary                 0.138       0.095        0.064       0.035
    128, 10, 1, binary               0.152       0.101        0.067       0.038
    256, 10, 1, binary               0.154       0.102        0.068       0.043
    128, 20, 1, rating               0.158       0.108        0.065       0.040
    128, 20, 0.5, rating             0.157       0.116        0.067       0.040   <- default
    256, 20, 0.5, rating             0.157       0.116        0.068       0.042
"""

from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.progress import report_epoch
from recsys_models.sparse_tensors import torch_csr
from recsys_models.training import seeded_generator
from recsys_models.tuning import FloatRange, IntRange, SearchSpace

MIN_CONFIDENCE_GAIN = 1e-6  # c - 1 below this is treated as this in the Woodbury path (1 / (c - 1) stays finite)


class ALSConfig(BaseModel):
    """Hyperparameters of implicit ALS; defaults from the validation search in the module docstring."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(16, 256, log=True),
        "regularization": FloatRange(0.1, 500.0, log=True),
        "alpha": FloatRange(0.05, 50.0, log=True),
        "iterations": IntRange(5, 30),
    }

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_factors: PositiveInt = Field(default=128, description="Latent dimensions.")
    iterations: PositiveInt = Field(default=15, description="Alternating sweeps (items, then users).")
    regularization: PositiveFloat = Field(default=20.0, description="L2 weight lambda on every factor vector.")
    alpha: PositiveFloat = Field(default=0.5, description="Confidence slope: c = 1 + alpha * r.")
    confidence_from: Literal["binary", "rating"] = Field(
        default="rating", description="r in the confidence: 1 per interaction, or the rating value."
    )
    solver: Literal["cg", "cholesky"] = Field(
        default="cg", description="Conjugate gradient (cost linear in n_factors), or exact batched solves."
    )
    cg_steps: PositiveInt = Field(default=3, description="Conjugate-gradient steps per row and sweep (solver='cg').")
    block_entries: PositiveInt = Field(
        default=131_072, description="Padded interactions per batched exact solve; bounds memory (x n_factors floats)."
    )
    init_std: PositiveFloat = Field(default=0.01, description="Standard deviation of the initial factors.")


def _blocks(degrees: np.ndarray, budget: int, min_width: int) -> list[np.ndarray]:
    """Non-empty rows grouped by ascending degree for batched solves.

    A block's rows have similar degrees (the longest at most 5/4 of the shortest, plus 8), so
    padding wastes little, and rows x max(longest, min_width) stays within `budget` (one row
    at least).
    """
    order = np.argsort(degrees, kind="stable")
    order = order[degrees[order] > 0]  # an empty row solves to zero
    sorted_degrees = degrees[order]
    blocks, start = [], 0
    while start < order.size:
        widest = int(np.searchsorted(sorted_degrees, sorted_degrees[start] * 1.25 + 8, side="right"))
        end = min(widest, start + max(1, budget // max(int(sorted_degrees[start]), min_width)))
        while end - start > 1 and (end - start) * max(int(sorted_degrees[end - 1]), min_width) > budget:
            end = start + max(1, budget // max(int(sorted_degrees[end - 1]), min_width))
        blocks.append(order[start:end])
        start = end
    return blocks


def _padded(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column indices, values and a validity mask of `rows`, padded to the longest: (rows, width)."""
    starts = matrix.indptr[rows]
    degrees = matrix.indptr[rows + 1] - starts
    offsets = np.arange(int(degrees.max()))
    valid = offsets[None, :] < degrees[:, None]
    flat = np.where(valid, starts[:, None] + offsets[None, :], 0)
    return matrix.indices[flat], np.where(valid, matrix.data[flat], 0.0), valid


class ALS(Recommender):
    """Weighted matrix factorisation of implicit feedback by alternating least squares; ranks only."""

    family = "als"
    config_type = ALSConfig
    config: ALSConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config, device = self.config, self.options.torch_device()
        by_user = self._confidence(train)
        by_item = by_user.T.tocsr()
        by_item.sort_indices()
        if config.solver == "cholesky":
            solve_items, solve_users = partial(self._solve_exact, by_item), partial(self._solve_exact, by_user)
        else:
            solve_items = partial(self._solve_cg, torch_csr(by_item, device))
            solve_users = partial(self._solve_cg, torch_csr(by_user, device))
        generator = seeded_generator(self.options.seed)
        users = (torch.randn((train.n_users, config.n_factors), generator=generator) * config.init_std).to(device)
        items = (torch.randn((train.n_items, config.n_factors), generator=generator) * config.init_std).to(device)
        for iteration in range(1, config.iterations + 1):
            items = solve_items(users, items)
            users = solve_users(items, users)
            report_epoch(self.family, iteration, config.iterations, {})
        self._user_factors, self._item_factors = users, items

    def _confidence(self, data: Interactions) -> sp.csr_matrix:
        """c - 1 per (user, item) of `data`, sorted CSR: alpha times the rating or 1."""
        config = self.config
        values = data.tocsr(values="rating" if config.confidence_from == "rating" else "binary")
        if config.confidence_from == "binary":
            values.data[:] = 1.0  # duplicate rows of a pair count once
        if (values.data < 0).any():
            raise ValueError(f"{self.family}: confidence from negative ratings is undefined")
        confidence = sp.csr_matrix(values * config.alpha, dtype=np.float32)
        confidence.sort_indices()
        return confidence

    def _gram(self, fixed: torch.Tensor) -> torch.Tensor:
        """Y^T Y + lambda I, shared by every row of a sweep."""
        return fixed.T @ fixed + self.config.regularization * torch.eye(self.config.n_factors, device=fixed.device)

    def _solve_exact(self, confidence: sp.csr_matrix, fixed: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Exact new factors of the rows of `confidence` (entries c - 1), the other side `fixed`.

        Blocks of rows with fewer interactions than factors use the Woodbury identity (a
        degree x degree system per row); the others form and factor their f x f system.
        """
        device, n_factors = fixed.device, self.config.n_factors
        gram = self._gram(fixed)
        gram_inverse = torch.cholesky_inverse(torch.linalg.cholesky(gram))
        solved = torch.zeros_like(current)
        for rows in _blocks(np.diff(confidence.indptr), self.config.block_entries, n_factors):
            columns, padded_weights, valid = _padded(confidence, rows)
            mask = torch.from_numpy(valid).to(device)
            y = fixed[torch.from_numpy(columns.astype(np.int64)).to(device)] * mask.unsqueeze(-1)  # (rows, width, f)
            weights = torch.from_numpy(padded_weights.astype(np.float32)).to(device)
            target = torch.einsum("bw,bwf->bf", 1.0 + weights, y)  # Y^T C_u p_u: p_u is 1 on the row's items
            if columns.shape[1] < n_factors:
                solution = self._woodbury(gram_inverse, y, weights, mask, target)
            else:
                solution = self._cholesky(gram, y, weights, target)
            solved[torch.from_numpy(rows.astype(np.int64)).to(device)] = solution
        return solved

    def _cholesky(
        self, gram: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Solve (gram + Y^T W Y) x = target per row with a batched Cholesky factorisation."""
        system = gram + (y * weights.unsqueeze(-1)).transpose(1, 2) @ y
        factor, info = torch.linalg.cholesky_ex(system)
        if info.any():
            raise FloatingPointError(f"{self.family}: a normal-equation system is not positive definite")
        return torch.cholesky_solve(target.unsqueeze(-1), factor).squeeze(-1)

    def _woodbury(
        self,
        gram_inverse: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        mask: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """Solve (G + U^T W U) x = b as G^-1 b - G^-1 U^T (W^-1 + U G^-1 U^T)^-1 U G^-1 b.

        Padding rows of U are zero and get 1 on the inner diagonal, so they solve to zero.
        """
        projected = y @ gram_inverse  # U G^-1, (rows, width, f)
        inner = projected @ y.transpose(1, 2)
        inverse_weights = torch.where(mask, 1.0 / weights.clamp_min(MIN_CONFIDENCE_GAIN), 1.0)
        inner.diagonal(dim1=1, dim2=2).add_(inverse_weights)
        base = target @ gram_inverse
        factor, info = torch.linalg.cholesky_ex(inner)
        if info.any():
            raise FloatingPointError(f"{self.family}: a Woodbury inner system is not positive definite")
        inner_solution = torch.cholesky_solve(torch.einsum("bwf,bf->bw", y, base).unsqueeze(-1), factor)
        return base - torch.einsum("bw,bwf->bf", inner_solution.squeeze(-1), projected)

    def _solve_cg(self, confidence: torch.Tensor, fixed: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """A few conjugate-gradient steps per row from `current`, all rows at once with sparse products.

        A x = x G + sum_i w_ui (y_i . x_u) y_i: the dot products at the stored entries are one
        sampled dense-dense product (SDDMM), the sums one sparse-dense product.
        """
        gram, fixed_transposed = self._gram(fixed), fixed.T.contiguous()
        rows, columns, weights = confidence.crow_indices(), confidence.col_indices(), confidence.values()

        def with_values(values: torch.Tensor) -> torch.Tensor:
            return torch.sparse_csr_tensor(rows, columns, values, confidence.shape, check_invariants=False)

        def apply(x: torch.Tensor) -> torch.Tensor:
            dots = torch.sparse.sampled_addmm(confidence, x, fixed_transposed, beta=0.0).values()
            return x @ gram + torch.sparse.mm(with_values(weights * dots), fixed)

        target = torch.sparse.mm(with_values(1.0 + weights), fixed)
        x = current * (rows[1:] > rows[:-1]).unsqueeze(1)  # an empty row's solution is zero
        residual = target - apply(x)
        direction = residual.clone()
        norm = (residual * residual).sum(1)
        tiny = torch.finfo(x.dtype).tiny
        for _ in range(self.config.cg_steps):
            product = apply(direction)
            step = norm / (direction * product).sum(1).clamp_min(tiny)
            x += step[:, None] * direction
            residual -= step[:, None] * product
            new_norm = (residual * residual).sum(1)
            direction = residual + (new_norm / norm.clamp_min(tiny))[:, None] * direction
            norm = new_norm
        return x

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.array(self._check_users(user_indices))).to(self._user_factors.device)
        return (self._user_factors[users] @ self._item_factors.T).cpu().numpy()

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Fold-in in closed form: x = (Y^T C Y + lambda I)^-1 Y^T C p for the history's confidences
        with the item factors Y fixed, the exact solve of a user sweep. Equal to the trained scores
        with solver='cholesky'; with 'cg' the trained users stop a few CG steps short of it."""
        current = torch.zeros((len(history), self.config.n_factors), device=self._item_factors.device)
        users = self._solve_exact(self._confidence(history.rows), self._item_factors, current)
        return (users @ self._item_factors.T).cpu().numpy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self._user_factors.cpu().numpy(), "item_factors": self._item_factors.cpu().numpy()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        device = self.options.torch_device()
        self._user_factors = torch.from_numpy(state["user_factors"]).to(device)
        self._item_factors = torch.from_numpy(state["item_factors"]).to(device)
