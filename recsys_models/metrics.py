"""Metric definitions of ../shared/PROTOCOLS.md, vectorised over users; per-user values kept."""

import numpy as np

Z_95 = 1.959963984540054


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


def mean_with_interval(values: np.ndarray) -> dict[str, float]:
    """Mean, standard error and a 95% normal-approximation interval over users."""
    n = values.size
    if n == 0:
        return {"mean": float("nan"), "stderr": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "stderr": stderr, "ci_low": mean - Z_95 * stderr, "ci_high": mean + Z_95 * stderr}


def catalogue_coverage(recommended_items: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the number of candidate items."""
    if n_items < 1:
        raise ValueError("coverage needs at least one item")
    return float(np.unique(recommended_items).size / n_items)
