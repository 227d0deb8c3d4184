"""The one top-k kernel every ranking goes through (recommend, evaluation, validation, the hybrids'
blend selection): each row's k best entries with some entries excluded, and which of them are hits."""

import numpy as np
import scipy.sparse as sp
import torch


def top_k(
    scores: np.ndarray | torch.Tensor, k: int, exclude: sp.spmatrix | sp.sparray | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of each row's `k` best entries (at most the row's length), best first;
    the stored entries of a sparse `exclude`, or the True cells of a boolean one (same shape), are
    left out, scored -inf. A tensor is ranked on its device; `scores` itself is never changed."""
    if isinstance(scores, torch.Tensor):
        table = scores.detach().float().clone()
    else:
        table = torch.from_numpy(np.array(scores, dtype=np.float32))
    if isinstance(exclude, np.ndarray):
        table[torch.from_numpy(exclude).to(table.device)] = -torch.inf
    elif exclude is not None:
        blocked = sp.coo_matrix(exclude)
        rows = torch.from_numpy(blocked.row.astype(np.int64)).to(table.device)
        cols = torch.from_numpy(blocked.col.astype(np.int64)).to(table.device)
        table[rows, cols] = -torch.inf
    top = torch.topk(table, min(k, table.shape[1]), dim=1)
    return top.indices.cpu().numpy(), top.values.cpu().numpy()


def mark_hits(rows: np.ndarray, top_items: np.ndarray, relevant_keys: np.ndarray, n_items: int) -> np.ndarray:
    """Which list slots hold a relevant item: row i's list is `top_items[i]` (-1: an empty slot) and
    belongs to `rows[i]`; `relevant_keys` are the sorted codes row * n_items + item of the relevant pairs."""
    if relevant_keys.size == 0:
        return np.zeros(top_items.shape, dtype=bool)
    codes = rows[:, None] * n_items + top_items
    position = np.minimum(np.searchsorted(relevant_keys, codes), relevant_keys.size - 1)
    return (top_items >= 0) & (relevant_keys[position] == codes)
