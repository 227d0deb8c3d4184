"""Full-ranking NDCG@k on a validation tail, for early stopping inside a trainer.

Same definitions as the evaluation module (metrics.ranking_metrics: binary gains, ideal DCG
over min(|rel|, k)), but on index matrices and score tensors, so that it runs each epoch
without data frames or a fitted `Recommender`.
"""

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recsys_models.metrics import ranking_metrics


def validation_ndcg(
    score: Callable[[torch.Tensor], torch.Tensor],
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix,
    k: int = 10,
    batch_size: int = 2048,
) -> float:
    """Mean NDCG@k over the users with a relevant item.

    `score(users)` returns a (len(users), n_items) tensor for a CPU int64 tensor of user indices;
    `relevant` marks each user's validation items, `exclude` the items removed from their
    candidates (their training history). Both are (n_users, n_items).
    """
    if relevant.shape != exclude.shape:
        raise ValueError(f"relevant {relevant.shape} and exclude {exclude.shape} differ in shape")
    relevant = sp.csr_matrix(relevant)
    n_items = relevant.shape[1]
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant)
    if users.size == 0:
        raise ValueError("no user has a relevant validation item")
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), n_relevant)
    relevant_keys = np.sort(rows * n_items + relevant.indices)
    ndcg = np.empty(users.size)
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        scores = score(torch.from_numpy(batch)).float().clone()
        excluded = exclude[batch].tocoo()
        row = torch.from_numpy(excluded.row.astype(np.int64)).to(scores.device)
        col = torch.from_numpy(excluded.col.astype(np.int64)).to(scores.device)
        scores[row, col] = -torch.inf
        top = torch.topk(scores, min(k, n_items), dim=1).indices.cpu().numpy()
        hits = np.isin(batch[:, None] * n_items + top, relevant_keys)
        if hits.shape[1] < k:
            hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
        ndcg[start : start + batch.size] = ranking_metrics(hits, n_relevant[batch])["ndcg"]
    return float(ndcg.mean())
