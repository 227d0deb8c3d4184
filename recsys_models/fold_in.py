"""Fold-in: the user-side parameters a factorisation family's own loss gives for a history, every
item-side parameter fixed (issue 20). The user side then scores the catalogue as a trained user's does.

- `ridge_rows`: squared error with an L2 penalty, in closed form (biased MF, MF).
- `fold_in`: any other loss, by L-BFGS (Nocedal 1980) on the user vectors of a batch of histories,
  the per-row losses summed (they are independent, so the sum's minimum is each row's). The
  sampled negatives of training are replaced by their expectation under the sampler's
  distribution (`negative_distribution`), which makes the objective deterministic; with a convex
  loss (BPR-MF, GMF, hybrid_features) the solution is the loss's unique minimum, with a network
  (MLP, NeuMF) a local one from the mean trained user.

Penalties follow the trainers: each training pair adds `l2 * |user vector|^2` once, so a history
of n pairs is penalised n times.
"""

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsys_models.history import HistoryBatch

ScoreFunction = Callable[[torch.Tensor], torch.Tensor]  # user vectors (b, d) -> scores (b, n_items)
DataLoss = Callable[[torch.Tensor, slice], torch.Tensor]  # scores (b, n_items) of rows `slice` -> summed loss
PAIR_BUDGET = 1 << 23  # rows x longest history x items per L-BFGS batch (the pairwise loss's tensor)
MAX_ITERATIONS = 200
TOLERANCE = 1e-7


def ridge_rows(history: HistoryBatch, features: np.ndarray, targets: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Per history row, argmin_x sum_e (features[item_e] . x - targets_e)^2 + n * sum_d penalty_d x_d^2
    over its n entries e (each interaction one term, as each training row is), shape (n_rows, d)."""
    rows = history.rows
    order = np.argsort(rows.user_idx, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(history.lengths)])
    features = np.asarray(features, dtype=np.float64)
    solution = np.zeros((len(history), features.shape[1]))
    for row in range(len(history)):
        entries = order[bounds[row] : bounds[row + 1]]
        x = features[rows.item_idx[entries]]
        system = x.T @ x + np.diag(entries.size * np.asarray(penalty, dtype=np.float64))
        solution[row] = np.linalg.solve(system, x.T @ targets[entries])
    return solution


def negative_distribution(positives: sp.csr_matrix, weights: np.ndarray | None, exclude_positives: bool) -> np.ndarray:
    """Per row, the probability of each item being drawn as a negative: `weights` (uniform when
    None) with the row's positives left out when `exclude_positives`, normalised; (n_rows, n_items)."""
    n_rows, n_items = positives.shape
    distribution = np.tile(np.ones(n_items) if weights is None else np.asarray(weights, np.float64), (n_rows, 1))
    if exclude_positives:
        distribution[positives.nonzero()] = 0.0
    totals = distribution.sum(axis=1, keepdims=True)
    return distribution / np.where(totals > 0, totals, 1.0)


def bpr_loss_of(positives: sp.csr_matrix, negatives: np.ndarray) -> DataLoss:
    """Sum over each row's positives i of E_j[-log sigmoid(s_i - s_j)], j ~ the row's `negatives`."""
    padded, mask = _padded(positives)

    def loss(scores: torch.Tensor, rows: slice) -> torch.Tensor:
        positive = torch.gather(scores, 1, padded[rows].to(scores.device))  # (b, L)
        pairwise = F.softplus(scores[:, None, :] - positive[:, :, None])  # (b, L, n_items)
        expected = (pairwise * torch.from_numpy(negatives[rows]).to(scores)[:, None, :]).sum(-1)
        return (expected * mask[rows].to(scores)).sum()

    return loss


def bce_loss_of(positives: sp.csr_matrix, negatives: np.ndarray) -> DataLoss:
    """Sum over each row's positives i of -log sigmoid(s_i) + E_j[-log sigmoid(-s_j)] (NCF's log loss)."""
    padded, mask = _padded(positives)
    counts = torch.from_numpy(np.diff(positives.indptr).astype(np.float32))

    def loss(scores: torch.Tensor, rows: slice) -> torch.Tensor:
        positive = (F.softplus(-torch.gather(scores, 1, padded[rows].to(scores.device))) * mask[rows].to(scores)).sum()
        negative = (F.softplus(scores) * torch.from_numpy(negatives[rows]).to(scores)).sum(-1)
        return positive + (counts[rows].to(scores) * negative).sum()

    return loss


def squared_loss_of(history: HistoryBatch) -> DataLoss:
    """Sum over each row's interactions of (s_i - weight)^2 (an explicit-rating objective)."""
    rows_of = history.rows

    def loss(scores: torch.Tensor, rows: slice) -> torch.Tensor:
        keep = (rows_of.user_idx >= rows.start) & (rows_of.user_idx < rows.stop)
        users = torch.from_numpy(rows_of.user_idx[keep] - rows.start).to(scores.device)
        items = torch.from_numpy(rows_of.item_idx[keep].astype(np.int64)).to(scores.device)
        return ((scores[users, items] - torch.from_numpy(rows_of.rating[keep]).to(scores)) ** 2).sum()

    return loss


def fold_in(
    score: ScoreFunction, data_loss: DataLoss, initial: torch.Tensor, pairs: np.ndarray, l2: float, width: int
) -> torch.Tensor:
    """User vectors minimising `data_loss + l2 * pairs * |x|^2` per row, from `initial` (d,), by L-BFGS
    over batches of rows; `width` is the longest row (sizes the batches), `pairs` each row's count."""
    n_rows = pairs.size
    batch = max(1, PAIR_BUDGET // max(1, width * score(initial[None, :]).shape[1]))
    solved = []
    for start in range(0, n_rows, batch):
        rows = slice(start, min(start + batch, n_rows))
        counts = torch.from_numpy(pairs[rows].astype(np.float32)).to(initial.device)
        solved.append(_minimise(score, data_loss, rows, initial.detach().repeat(counts.numel(), 1), counts, l2))
    return torch.cat(solved) if solved else initial.new_zeros((0, initial.numel()))


def _minimise(
    score: ScoreFunction, data_loss: DataLoss, rows: slice, start: torch.Tensor, counts: torch.Tensor, l2: float
) -> torch.Tensor:
    """The user vectors of `rows` minimising the fold-in objective, by L-BFGS from `start`."""
    vectors = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [vectors],
        max_iter=MAX_ITERATIONS,
        tolerance_grad=TOLERANCE,
        tolerance_change=TOLERANCE * 1e-2,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        with torch.enable_grad():
            total = data_loss(score(vectors), rows) + l2 * (counts * vectors.square().sum(-1)).sum()
            (vectors.grad,) = torch.autograd.grad(total, vectors)  # the item side gets no gradient
        return total.detach()

    optimizer.step(objective)
    return vectors.detach()


def fold_in_implicit(
    score: ScoreFunction,
    initial: torch.Tensor,
    positives: sp.csr_matrix,
    item_weights: np.ndarray | None,
    exclude_positives: bool,
    l2: float,
    loss_of: Callable[[sp.csr_matrix, np.ndarray], DataLoss],
) -> np.ndarray:
    """Scores of each row of `positives` from its folded-in user vector, under an implicit loss
    (`bpr_loss_of`, `bce_loss_of`) with negatives drawn by `item_weights` (None: uniform)."""
    negatives = negative_distribution(positives, item_weights, exclude_positives)
    lengths = np.diff(positives.indptr)
    vectors = fold_in(score, loss_of(positives, negatives), initial, lengths, l2, int(lengths.max(initial=1)))
    with torch.no_grad():
        return score(vectors).cpu().numpy()


def _padded(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's stored columns, padded with column 0 to the longest row, and the validity mask."""
    lengths = np.diff(matrix.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    valid = np.arange(width)[None, :] < lengths[:, None]
    flat = np.where(valid, matrix.indptr[:-1, None] + np.arange(width)[None, :], 0)
    columns = np.where(valid, np.append(matrix.indices, 0)[flat], 0)  # padding reads a real column, masked
    return torch.from_numpy(columns.astype(np.int64)), torch.from_numpy(valid.astype(np.float32))
