"""Metric definitions of ../shared/PROTOCOLS.md and the beyond-accuracy metrics, vectorised over
users, plus the seeded bootstrap that gives every per-user metric its interval.

Recommendation lists are (n_users, k) item-index matrices, best first; an index of -1 marks an
empty slot (fewer candidates than k), which is never a hit and never counts as exposure.
"""

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

_BOOTSTRAP_CELLS = 4_000_000  # resamples x users drawn at once: bounds the bootstrap's memory


def rating_errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of predicted ratings."""
    if predicted.shape != actual.shape:
        raise ValueError(f"predicted {predicted.shape} and actual {actual.shape} differ in shape")
    if predicted.size == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    error = predicted.astype(np.float64) - actual.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user top-k metrics from a (n_users, k) hit matrix and each user's count of relevant items.

    `n_relevant` counts every relevant item, also those no model can reach (absent from train),
    so recall and the ideal DCG are not flattered. A user with n_relevant == 0 is an error.
    """
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if hits.ndim != 2 or n_relevant.shape != (hits.shape[0],):
        raise ValueError(f"hits must be (n_users, k) and n_relevant (n_users,); got {hits.shape}, {n_relevant.shape}")
    if (n_relevant < 1).any():
        raise ValueError("every evaluated user needs at least one relevant item")
    k = hits.shape[1]
    ranks = np.arange(1, k + 1)
    discount = 1.0 / np.log2(ranks + 1.0)
    n_hits = hits.sum(axis=1)
    ideal_hits = np.minimum(n_relevant, k)
    ideal_dcg = np.cumsum(discount)[ideal_hits - 1]
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    first_hit = np.where(n_hits > 0, hits.argmax(axis=1) + 1, 0)
    return {
        "ndcg": (hits * discount).sum(axis=1) / ideal_dcg,
        "recall": n_hits / n_relevant,
        "precision": n_hits / k,
        "hit_rate": (n_hits > 0).astype(np.float64),
        "map": (precision_at_rank * hits).sum(axis=1) / ideal_hits,
        "mrr": np.where(first_hit > 0, 1.0 / np.maximum(first_hit, 1), 0.0),
    }


def ranking_metrics_at(hits: np.ndarray, n_relevant: np.ndarray, cutoffs: Sequence[int]) -> dict[str, np.ndarray]:
    """`ranking_metrics` at every cut-off from one (n_users, max(cutoffs)) hit matrix: `<name>_at_<k>`."""
    if max(cutoffs) > hits.shape[1]:
        raise ValueError(f"hits has {hits.shape[1]} ranks, fewer than the largest cut-off {max(cutoffs)}")
    return {
        f"{name}_at_{k}": values
        for k in sorted(set(cutoffs))
        for name, values in ranking_metrics(hits[:, :k], n_relevant).items()
    }


def catalogue_coverage(recommended_items: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the number of candidate items."""
    if n_items < 1:
        raise ValueError("coverage needs at least one item")
    recommended = np.asarray(recommended_items)
    return float(np.unique(recommended[recommended >= 0]).size / n_items)


def exposure_gini(recommended_items: np.ndarray, n_items: int) -> float:
    """Gini index of how often each of `n_items` catalogue items is recommended.

    0 when every item is shown equally often, approaching 1 when one item takes all exposure;
    items never recommended count with exposure 0.
    """
    if n_items < 1:
        raise ValueError("the Gini index needs at least one item")
    recommended = np.asarray(recommended_items).ravel()
    recommended = recommended[recommended >= 0]
    if recommended.size == 0:
        return float("nan")
    if recommended.max() >= n_items:
        raise ValueError(f"recommended item index {recommended.max()} outside a catalogue of {n_items}")
    exposure = np.sort(np.bincount(recommended, minlength=n_items)).astype(np.float64)
    rank = np.arange(1, n_items + 1)
    return float(((2 * rank - n_items - 1) * exposure).sum() / (n_items * exposure.sum()))


def novelty(recommended_items: np.ndarray, popularity_share: np.ndarray) -> np.ndarray:
    """Per list: mean self-information -log2(p_i) of its items, p_i = the item's popularity share.

    `popularity_share` is, per item index, the share of training users who interacted with the
    item (in (0, 1] for every item of the training vocabulary).
    """
    return _list_mean(recommended_items, -np.log2(np.asarray(popularity_share, dtype=np.float64)))


def average_popularity(recommended_items: np.ndarray, item_counts: np.ndarray) -> np.ndarray:
    """Per list: mean training interaction count of its items (average recommendation popularity)."""
    return _list_mean(recommended_items, np.asarray(item_counts, dtype=np.float64))


def intra_list_diversity(recommended_items: np.ndarray, features: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """Per list: mean pairwise distance 1 - cos(f_i, f_j) over the list's item pairs.

    `features` is (n_items, n_features), e.g. genre indicators; an item without features is at
    distance 1 from every item. Computed without materialising pairs: for unit rows v_i,
    sum_{i<j} v_i.v_j = (|sum v_i|^2 - sum |v_i|^2) / 2. Lists with fewer than two items give NaN.
    """
    items = np.asarray(recommended_items)
    dense = features.toarray() if isinstance(features, sp.spmatrix | sp.sparray) else np.asarray(features)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    unit = np.divide(dense, norms, out=np.zeros(dense.shape, dtype=np.float64), where=norms > 0)
    valid = items >= 0
    vectors = unit[np.where(valid, items, 0)] * valid[..., None]
    length = valid.sum(axis=1)
    similarity = ((vectors.sum(axis=1) ** 2).sum(axis=1) - (vectors**2).sum(axis=(1, 2))) / 2
    pairs = length * (length - 1) / 2
    return np.where(pairs > 0, 1.0 - similarity / np.maximum(pairs, 1), np.nan)


def bootstrap_means(
    values: np.ndarray, weights: np.ndarray | None = None, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """Weighted means of each column of `values` (n_users, n_metrics) over bootstrap resamples of users.

    Returns (n_resamples, n_metrics): sum(c_u w_u v_u) / sum(c_u w_u), where c_u counts how often
    user u was drawn. `weights` is (n_users,) or (n_users, n_metrics) (zero where a user has no
    value for a metric); NaN values get weight 0. Resampling is vectorised (a block of resamples
    at once, as count vectors) and seeded: the same seed and users give the same resamples for
    every model, which is what a paired comparison needs.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (n_users, n_metrics), got shape {values.shape}")
    n_users = values.shape[0]
    weights = np.ones(n_users) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        weights = np.broadcast_to(weights[:, None], values.shape)
    if weights.shape != values.shape:
        raise ValueError(f"weights must be ({n_users},) or {values.shape}, got {weights.shape}")
    if n_users == 0:
        return np.full((n_resamples, values.shape[1]), np.nan)
    defined = np.isfinite(values)
    weights = np.where(defined, weights, 0.0)
    # torch's matrix product: numpy's BLAS is many times slower on these short, wide products
    weighted = torch.from_numpy(np.where(defined, values, 0.0) * weights)
    weights_t = torch.from_numpy(np.ascontiguousarray(weights))
    samples = np.empty((n_resamples, values.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start, counts in _resample_counts(n_users, n_resamples, np.random.default_rng(seed)):
            counts_t = torch.from_numpy(counts)
            samples[start : start + counts.shape[0]] = (counts_t @ weighted).numpy() / (counts_t @ weights_t).numpy()
    return samples


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds of bootstrap samples (n_resamples, n_metrics), per column.

    NaN resamples (no user with a value drawn) are left out; an all-NaN column gives NaN bounds.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    samples = np.asarray(samples, dtype=np.float64)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.full(samples.shape[1], np.nan), np.full(samples.shape[1], np.nan)
    defined = ~np.isnan(samples).all(axis=0)  # a resample without any value of a metric is NaN
    if defined.any():
        low[defined], high[defined] = np.nanpercentile(samples[:, defined], [tail, 100 - tail], axis=0)
    return low, high


def _resample_counts(n_users: int, n_resamples: int, rng: np.random.Generator) -> Iterator[tuple[int, np.ndarray]]:
    """Blocks of resamples as (block, n_users) draw counts, bounded to about `_BOOTSTRAP_CELLS` cells."""
    block = max(1, _BOOTSTRAP_CELLS // n_users)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        draws = rng.integers(0, n_users, size=(size, n_users))
        offsets = (np.arange(size) * n_users)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n_users).reshape(size, n_users)
        yield start, counts.astype(np.float64)


def _list_mean(recommended_items: np.ndarray, item_values: np.ndarray) -> np.ndarray:
    """Mean of `item_values` over each list's non-empty slots (NaN for an empty list)."""
    items = np.asarray(recommended_items)
    valid = items >= 0
    total = np.where(valid, item_values[np.where(valid, items, 0)], 0.0).sum(axis=1)
    length = valid.sum(axis=1)
    return np.where(length > 0, total / np.maximum(length, 1), np.nan)
