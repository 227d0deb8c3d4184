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
from recsys_models.history import HistoryBatch
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
    config: RepeatConfig
    predicts_ratings = False
    _reference_time: int | None  # the last training timestamp; None in a model saved before issue 20

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        self._reference_time = int(train.timestamp.max())
        own = self._own_weights(train, np.ones(len(train), dtype=bool))
        counts = np.bincount(train.item_idx, minlength=train.n_items).astype(np.float64)
        self._own = own
        self._tie_scale = _smallest_gaps(own)
        self._popularity = counts / (2.0 * max(counts.max(), 1.0))

    def _own_weights(self, data: Interactions, timed: np.ndarray) -> sp.csr_matrix:
        """Per (user, item), the summed weights, decayed by age before the last training timestamp
        where the row is `timed` and a half-life is set (a model saved without that timestamp takes
        the latest one of `data`); zero or less removed."""
        weight = data.rating.astype(np.float64)
        if self.config.recency_half_life_days is not None:
            reference = self._reference_time if self._reference_time is not None else int(data.timestamp.max())
            age_days = np.where(timed, (reference - data.timestamp) / SECONDS_PER_DAY, 0.0)
            weight = weight * np.exp2(-age_days / self.config.recency_half_life_days)
        own = sp.csr_matrix((weight, (data.user_idx, data.item_idx)), shape=(data.n_users, data.n_items))
        own.sum_duplicates()
        own.data[own.data <= 0] = 0.0
        own.eliminate_zeros()
        own.sort_indices()
        return own

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        return self._score_own(self._own[users], self._tie_scale[users])

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """The history's own items first, by their weights (decayed only where it has timestamps),
        then popularity, as for a training user: exact."""
        own = self._own_weights(history.rows, history.timed[history.rows.user_idx])
        return self._score_own(own, _smallest_gaps(own))

    def _score_own(self, own: sp.csr_matrix, tie_scale: np.ndarray) -> np.ndarray:
        """Scores of rows whose own items weigh `own` (module docstring)."""
        scores = np.broadcast_to(self._popularity, (own.shape[0], self._popularity.size)).copy()
        own = own.tocoo()
        scores[own.row, own.col] = 1.0 + own.data + tie_scale[own.row] * self._popularity[own.col]
        return scores.astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "own_indptr": self._own.indptr,
            "own_indices": self._own.indices,
            "own_weights": self._own.data,
            "tie_scale": self._tie_scale,
            "popularity": self._popularity,
            "reference_time": np.asarray(self._reference_time, dtype=np.int64),
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        shape = (state["own_indptr"].size - 1, state["popularity"].size)
        self._own = sp.csr_matrix((state["own_weights"], state["own_indices"], state["own_indptr"]), shape=shape)
        self._tie_scale = state["tie_scale"]
        self._popularity = state["popularity"]
        reference = state.get("reference_time")  # absent from models saved before issue 20
        self._reference_time = int(reference) if reference is not None else None


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
