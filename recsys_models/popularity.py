"""Popularity baseline: every user gets the items with the most training interactions."""

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions


class PopularityConfig(BaseModel):
    """Hyperparameters of the popularity baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rating: float | None = Field(
        default=None, description="Count only ratings at or above this value; None counts every interaction."
    )


class Popularity(Recommender):
    """Non-personalised ranking by interaction count; the floor every ranking family must beat."""

    family = "popularity"
    config_type = PopularityConfig
    config: PopularityConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        keep = train.rating >= self.config.min_rating if self.config.min_rating is not None else slice(None)
        counts = np.bincount(train.item_idx[keep], minlength=train.n_items).astype(np.float32)
        self._counts = counts

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self._rows(self._check_users(user_indices).size)

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Not personalised: the training counts, whatever the history (as defined)."""
        return self._rows(len(history))

    def _rows(self, n_rows: int) -> np.ndarray:
        return np.broadcast_to(self._counts, (n_rows, self._counts.size)).copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self._counts}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._counts = state["counts"]
