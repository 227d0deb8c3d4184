"""Validation figures: full-ranking NDCG@k on a validation tail, for early stopping inside a
trainer, and the figures the train stage checks a fitted model's divergence on (its NDCG@10 and,
for rating families, its RMSE beside a constant predictor's).

NDCG has the evaluation module's definitions (metrics.ranking_metrics: binary gains, ideal DCG
over min(|rel|, k)), but on index matrices and score tensors, so that it runs each epoch
without data frames or a fitted `Recommender`.
"""

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recsys_models.base import Recommender
from recsys_models.interactions import Interactions
from recsys_models.metrics import ranking_metrics, rating_errors
from recsys_models.top_k import mark_hits, top_k


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
    candidates (their training history). Both are (n_users, n_items). NaN when a score is NaN or
    +inf: a diverged model's ranking means nothing (-inf is a score that ranks last, as excluded items get).
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
        scores = score(torch.from_numpy(batch))
        if torch.isnan(scores).any() or torch.isposinf(scores).any():
            return float("nan")
        top = top_k(scores, k, exclude[batch])[0]
        hits = mark_hits(batch, top, relevant_keys, n_items)
        if hits.shape[1] < k:
            hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
        ndcg[start : start + batch.size] = ranking_metrics(hits, n_relevant[batch])["ndcg"]
    return float(ndcg.mean())


def constant_rmse(value: float, valid: Interactions) -> float:
    """Validation RMSE of a trivial rating predictor: `value` (e.g. the training mean) for every pair."""
    return rating_errors(np.full(len(valid), value), valid.rating)["rmse"]


def fitted_rmse(model: Recommender, valid: Interactions) -> float:
    """Validation RMSE of a fitted rating family's `predict` (NaN where a prediction is)."""
    return rating_errors(model.predict(valid.user_idx, valid.item_idx), valid.rating)["rmse"]


def fitted_ndcg(
    model: Recommender,
    train: Interactions,
    valid: Interactions,
    exclude_seen: bool = True,
    max_users: int = 1000,
    seed: int = 0,
) -> float:
    """`validation_ndcg` of a fitted model's `score` on its validation users, at most `max_users`
    of them (a seeded sample: the figure is a divergence check, not a measurement); candidates
    exclude the training items where the source excludes seen items."""
    relevant = valid.tocsr(values="binary")
    users = np.flatnonzero(np.diff(relevant.indptr))
    if users.size > max_users:
        keep = np.zeros(relevant.shape[0], dtype=np.float32)
        keep[np.random.default_rng(seed).choice(users, max_users, replace=False)] = 1.0
        relevant = sp.csr_matrix(sp.diags(keep) @ relevant)
        relevant.eliminate_zeros()
    exclude = train.tocsr(values="binary") if exclude_seen else sp.csr_matrix(relevant.shape, dtype=np.float32)
    return validation_ndcg(
        lambda batch: torch.from_numpy(np.ascontiguousarray(model.score(batch.numpy()), dtype=np.float32)),
        relevant,
        exclude,
    )
