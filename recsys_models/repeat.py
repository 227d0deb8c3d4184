"""Repeat baseline for repeat-consumption data (groceries, music): each user's own most-consumed
items first, by the sum of their interaction weights (optionally decayed by age), then the most
popular other items.

It only makes sense when seen items are not excluded: call `recommend(..., exclude_seen=False)`.
With the default `exclude_seen=True` every own item is masked and it degrades to popularity over
the user's unseen items.

Scores: an unseen item gets its popularity share, count / (2 * largest count), in [0, 0.5]; an
own item gets 1 + own weight + a popularity tie-break scaled below the user's smallest gap between
distinct own weights, so every own item outranks every unseen one, own items keep the order of
their weights, and equal weights fall back to popularity. Own items whose weights sum to zero or
less count as unseen.
"""

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from recsys_models.base import Recommender
from recsys_models.interactions import Interactions
from recsys_models.tuning import Choice, SearchSpace

SECONDS_PER_DAY = 86_400.0


class RepeatConfig(BaseModel):
    """Hyperparameters of the repeat baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search_space: ClassVar[SearchSpace] = {"recency_half_life_days": Choice((None, 7.0, 30.0, 90.0, 365.0))}

    recency_half_life_days: PositiveFloat | None = Field(
        default=None,
        description="Halve an interaction's weight per this many days before the last training timestamp; "
        "None sums the weights undecayed.",
    )


class Repeat(Recommender):
    """Own most-consumed items, then popularity; ranks, does not rate."""

    family = "repeat"
    recommends_seen = True
    config_type = RepeatConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        weight = train.rating.astype(np.float64)
        if self.config.recency_half_life_days is not None:
            age_days = (train.timestamp.max() - train.timestamp) / SECONDS_PER_DAY
            weight = weight * np.exp2(-age_days / self.config.recency_half_life_days)
        own = sp.csr_matrix((weight, (train.user_idx, train.item_idx)), shape=(train.n_users, train.n_items))
        own.sum_duplicates()
        own.data[own.data <= 0] = 0.0
        own.eliminate_zeros()
        own.sort_indices()
        counts = np.bincount(train.item_idx, minlength=train.n_items).astype(np.float64)
        self._own = own
        self._tie_scale = _smallest_gaps(own)
        self._popularity = counts / (2.0 * max(counts.max(), 1.0))

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        scores = np.broadcast_to(self._popularity, (users.size, self._popularity.size)).copy()
        own = self._own[users].tocoo()
        scores[own.row, own.col] = 1.0 + own.data + self._tie_scale[users][own.row] * self._popularity[own.col]
        return scores.astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "own_indptr": self._own.indptr,
            "own_indices": self._own.indices,
            "own_weights": self._own.data,
            "tie_scale": self._tie_scale,
            "popularity": self._popularity,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        shape = (state["own_indptr"].size - 1, state["popularity"].size)
        self._own = sp.csr_matrix((state["own_weights"], state["own_indices"], state["own_indptr"]), shape=shape)
        self._tie_scale = state["tie_scale"]
        self._popularity = state["popularity"]


def _smallest_gaps(own: sp.csr_matrix) -> np.ndarray:
    """Per user, the smallest positive difference between two of their own weights; 1 where there is none."""
    rows = np.repeat(np.arange(own.shape[0]), np.diff(own.indptr))
    order = np.lexsort((own.data, rows))
    rows, values = rows[order], own.data[order]
    same_row = rows[1:] == rows[:-1]
    gaps = np.diff(values)
    keep = same_row & (gaps > 0)
    smallest = np.full(own.shape[0], np.inf)
    np.minimum.at(smallest, rows[1:][keep], gaps[keep])
    return np.where(np.isfinite(smallest), smallest, 1.0)
