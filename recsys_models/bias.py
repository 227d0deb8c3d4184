"""Bias baseline: global mean plus damped user and item biases in closed form.

    r(u, i) = mu + b_u + b_i
    b_i = sum_u (r_ui - mu - b_u) / (n_i + item_damping)    (b_u = 0 on the first pass)
    b_u = sum_i (r_ui - mu - b_i) / (n_u + user_damping)

Koren, "Factor in the neighbors: scalable and accurate collaborative filtering", TKDD 2010, sec. 2.1
(the decoupled, shrunk estimates); also the baseline of Surprise's BaselineOnly and LensKit's Bias.
Later passes re-estimate the item biases given the user biases, then the user biases again.

Defaults from a search on the validation slices of benchmarks/protocol_quality.py (`--validation`,
which never touches test), RMSE on P4 mostly and P2, ml-latest-small (mls) and ml-100k:

1. item_damping in {0, 5, 10, 25, 50} x user_damping in {0, 5, 10, 25, 50} x n_passes in {1, 2, 3}:
   item damping 5 best, 10+ worse (P4 mls 0.880 at 10 / 10); no damping clearly worse (P4 0.911 /
   0.977 at 0 / 0); user damping 5-10 best; a second pass helps mls (0.8743 -> 0.8728 at 5 / 5).
2. item_damping in {2.5, 5, 7.5} x user_damping in {5, 10, 15} x n_passes in {1, 2}, and item_damping
   in {1, 2, 3} x user_damping 10 x n_passes in {2, 3}: flat near the optimum (the best dozen within
   0.003 RMSE); item damping 2-3 and user damping 10 with 2 passes best on average.

Chosen: item_damping 2.5, user_damping 10, n_passes 2. Validation RMSE P4 mls / ml-100k: 0.870 /
0.968 (the classic one pass at 5 / 5: 0.874 / 0.971), P2 0.811 / 0.996.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.tuning import FloatRange, IntRange, SearchSpace


class BiasConfig(BaseModel):
    """Hyperparameters of the bias baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search_space: ClassVar[SearchSpace] = {
        "item_damping": FloatRange(0.0, 50.0),
        "user_damping": FloatRange(0.0, 100.0),
        "n_passes": IntRange(1, 5),
    }

    item_damping: NonNegativeFloat = Field(
        default=2.5, description="Pseudo-count pulling each item bias towards 0 (shrinks rarely rated items)."
    )
    user_damping: NonNegativeFloat = Field(
        default=10.0, description="Pseudo-count pulling each user bias towards 0 (shrinks light users)."
    )
    n_passes: PositiveInt = Field(
        default=2, description="Alternating passes (item biases, then user biases); 1 is the classic estimate."
    )


@dataclass(frozen=True)
class Biases:
    """Learned baseline: global mean, user biases (n_users,), item biases (n_items,)."""

    global_mean: float
    user: np.ndarray
    item: np.ndarray

    def pairs(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """mu + b_u + b_i for known (user, item) index pairs, unclipped."""
        return self.global_mean + self.user[user_indices] + self.item[item_indices]


def fit_biases(data: Interactions, item_damping: float, user_damping: float, n_passes: int = 1) -> Biases:
    """Closed-form damped biases of `data` (see the module docstring); vectorised with bincount."""
    ratings = data.rating.astype(np.float64)
    mu = float(ratings.mean())
    item_counts = np.bincount(data.item_idx, minlength=data.n_items)
    user_counts = np.bincount(data.user_idx, minlength=data.n_users)
    user_bias = np.zeros(data.n_users)
    item_bias = np.zeros(data.n_items)
    for _ in range(n_passes):
        residual = ratings - mu - user_bias[data.user_idx]
        item_bias = _damped_mean(data.item_idx, residual, item_counts, item_damping)
        residual = ratings - mu - item_bias[data.item_idx]
        user_bias = _damped_mean(data.user_idx, residual, user_counts, user_damping)
    return Biases(mu, user_bias.astype(np.float32), item_bias.astype(np.float32))


def _damped_mean(groups: np.ndarray, values: np.ndarray, counts: np.ndarray, damping: float) -> np.ndarray:
    """sum(values) / (count + damping) per group; 0 for a group with neither rows nor damping."""
    totals = np.bincount(groups, weights=values, minlength=counts.size)
    denominator = counts + damping
    return np.divide(totals, denominator, out=np.zeros_like(totals), where=denominator > 0)


class Bias(Recommender):
    """Global mean + damped user and item biases (Koren 2010); ranks items by mu + b_i (+ b_u)."""

    family = "bias"
    needs_ratings = True
    config_type = BiasConfig
    config: BiasConfig
    predicts_ratings = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        self._biases = fit_biases(train, config.item_damping, config.user_damping, config.n_passes)
        self._rating_range = (float(train.rating.min()), float(train.rating.max()))

    @property
    def biases(self) -> Biases:
        """The learned global mean and biases."""
        return self._require(getattr(self, "_biases", None))

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """mu + b_u + b_i for every item; b_u shifts a user's row and never changes its order."""
        users = self._check_users(user_indices)
        biases = self.biases
        return (biases.global_mean + biases.user[users][:, None] + biases.item[None, :]).astype(np.float32)

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """mu + b_u + b_i with b_u from the history in closed form: the damped mean of its
        residuals r - mu - b_i, as the last pass of `fit_biases` computes it."""
        biases, rows = self.biases, history.rows
        residual = rows.rating.astype(np.float64) - biases.global_mean - biases.item[rows.item_idx]
        user = _damped_mean(rows.user_idx, residual, history.lengths, self.config.user_damping)
        return (biases.global_mean + user[:, None] + biases.item[None, :]).astype(np.float32)

    def unweighted_history_weight(self) -> float:
        """An item of an unrated history counts as rated at the top of the training scale (liked)."""
        return self._rating_range[1]

    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Predicted ratings of known pairs, clipped to the training rating range."""
        users = self._check_users(user_indices)
        items = self._check_items(item_indices, allow_unknown=False)
        return np.clip(self.biases.pairs(users, items), *self._rating_range)

    def predict_partial(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Ratings where -1 marks an unknown user or item: its bias term is left out (mu + b_i for a new user).

        Clipped to the training rating range; an unknown user and item together get the global mean.
        """
        users = np.asarray(user_indices, dtype=np.int64)
        items = self._check_items(item_indices, allow_unknown=True)
        if users.shape != items.shape:
            raise ValueError(f"user and item indices differ in shape: {users.shape} vs {items.shape}")
        if users.size and (users.min() < -1 or users.max() >= len(self.users)):
            raise ValueError(f"bias: user indices must lie in [-1, {len(self.users)}); -1 marks an unknown user")
        biases = self.biases
        user_term = np.where(users >= 0, biases.user[np.maximum(users, 0)], 0.0)
        item_term = np.where(items >= 0, biases.item[np.maximum(items, 0)], 0.0)
        return np.clip(biases.global_mean + user_term + item_term, *self._rating_range).astype(np.float32)

    def fallback_rating(self) -> float:
        return self.biases.global_mean

    def _check_items(self, item_indices: np.ndarray, allow_unknown: bool) -> np.ndarray:
        items = np.asarray(item_indices, dtype=np.int64)
        low = -1 if allow_unknown else 0
        if items.size and (items.min() < low or items.max() >= self.n_items):
            raise ValueError(f"bias: item indices must lie in [{low}, {self.n_items}); map raw ids first")
        return items

    def _state(self) -> dict[str, np.ndarray]:
        biases = self.biases
        return {
            "global_mean": np.asarray(biases.global_mean),
            "user_bias": biases.user,
            "item_bias": biases.item,
            "rating_range": np.asarray(self._rating_range),
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._biases = Biases(float(state["global_mean"]), state["user_bias"], state["item_bias"])
        low, high = state["rating_range"]
        self._rating_range = (float(low), float(high))
