"""Popularity baseline: every user gets the items with the most training interactions."""

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recsys_models.base import Recommender
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
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        keep = train.rating >= self.config.min_rating if self.config.min_rating is not None else slice(None)
        counts = np.bincount(train.item_idx[keep], minlength=train.n_items).astype(np.float32)
        self._counts = counts

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        return np.broadcast_to(self._counts, (users.size, self._counts.size)).copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self._counts}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._counts = state["counts"]
