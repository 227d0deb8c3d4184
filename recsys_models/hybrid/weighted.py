"""Weighted hybrid: a blend of a collaborative family's scores and content scores (Burke 2002,
"Hybrid Recommender Systems: Survey and Experiments", the weighted design).

Both parts' scores are standardised per user (row mean 0, deviation 1) before blending:
score = w * collaborative + (1 - w) * content. The weight w is chosen from `weights` by NDCG@10
on the validation tail (parts trained on train only, relevance as in evaluation), then both
parts are retrained on train + valid (the component as its class uses validation). An item absent
from training has no collaborative score: it gets the blend of the parts that can score it
(content alone, standardised with the user's warm content scores, unless the component scores
new items too), so cold items are ranked by content whatever w is.

Defaults: component `ease` (the strongest collaborative family here, README); the weight grid
covers 0 (content only) to 1 (collaborative only), dense near 1 because content alone is a weak
warm ranker. The chosen weight is in `history` and state. With benchmarks/cold_start_quality.py
(seed 42) validation chose 0.8 / 0.85 on ml-latest-small P4 / P2 and 0.9 / 0.95 on ml-100k P4 /
P2; paired difference of test NDCG@10 with EASE alone on the same users (95% interval):

    ml-latest-small P4 +0.005 [+0.002, +0.008] (592 users)   P2 +0.002 [-0.004, +0.010] (28)
    ml-100k         P4 +0.003 [+0.001, +0.005] (908 users)   P2 -0.005 [-0.012, +0.001] (98)
"""

import logging
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from recsys_models.features import ItemFeatures
from recsys_models.history import HistoryBatch
from recsys_models.hybrid.parts import (
    COLLABORATIVE,
    CONTENT,
    BlendConfig,
    CompositeRecommender,
    per_user_ndcg,
    standardise,
    standardise_like,
    validation_targets,
)
from recsys_models.interactions import Interactions

logger = logging.getLogger(__name__)


class HybridWeightedConfig(BlendConfig):
    """Hyperparameters of the weighted hybrid; the weight itself is fitted on validation."""

    weights: tuple[float, ...] = Field(
        default=(0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0),
        description="Candidate weights w of the collaborative scores, chosen by validation NDCG@10.",
    )
    default_weight: float = Field(
        default=0.9, ge=0.0, le=1.0, description="The weight when the validation tail has no relevant row."
    )

    @model_validator(mode="after")
    def _valid_parts(self) -> "HybridWeightedConfig":
        if not self.weights or any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ValueError(f"weights must be a non-empty list of values in [0, 1], got {self.weights}")
        return self


class HybridWeighted(CompositeRecommender):
    """w * standardised collaborative + (1 - w) * standardised content scores; ranks, does not rate."""

    family = "hybrid_weighted"
    config_type = HybridWeightedConfig
    config: HybridWeightedConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True
    needs_item_features = True
    scores_new_items = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        targets = validation_targets(train, valid, config.relevance_threshold) if valid is not None else None
        self._weight = config.default_weight
        if targets is not None:
            self._parts = self._fit_parts(train, None, item_features)
            users, ndcg = per_user_ndcg(self._candidates, *targets)
            mean = {weight: float(values.mean()) for weight, values in ndcg.items()}
            self._weight = max(config.weights, key=lambda weight: (mean[weight], weight))
            self.history = [
                {"epoch": index + 1, "weight": w, "valid_ndcg_at_10": mean[w]} for index, w in enumerate(config.weights)
            ]
            logger.info(
                "%s: weight %.2f of %s (validation NDCG@10 %.4f on %d users)",
                self.family,
                self._weight,
                config.component,
                mean[self._weight],
                users.size,
            )
        else:
            logger.warning("%s: no relevant validation row, weight %.2f", self.family, self._weight)
        self._parts = self._fit_parts(train, valid, item_features)

    def _candidates(self, users: np.ndarray) -> dict[float, np.ndarray]:
        collaborative = standardise(self._parts[COLLABORATIVE].score(users))
        content = standardise(self._parts[CONTENT].score(users))
        return {weight: weight * collaborative + (1.0 - weight) * content for weight in self.config.weights}

    @property
    def weight(self) -> float:
        """The fitted weight of the collaborative scores."""
        return float(self._weight)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        return self._blend(self.part(COLLABORATIVE).score(users), self.part(CONTENT).score(users))

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """The blend of both parts' scores of the history: exact where both parts are."""
        return self._blend(self.part(COLLABORATIVE).score_history(history), self.part(CONTENT).score_history(history))

    def _blend(self, collaborative: np.ndarray, content: np.ndarray) -> np.ndarray:
        """w * standardised collaborative + (1 - w) * standardised content scores."""
        return (self._weight * standardise(collaborative) + (1.0 - self._weight) * standardise(content)).astype(
            np.float32
        )

    def score_new_items(self, user_indices: np.ndarray, new_items: ItemFeatures) -> np.ndarray:
        users = self._check_users(user_indices)
        content = self.part(CONTENT)
        content_new = standardise_like(content.score_new_items(users, new_items), content.score(users))
        collaborative = self.part(COLLABORATIVE)
        if not collaborative.scores_new_items:
            return content_new
        collaborative_new = standardise_like(
            collaborative.score_new_items(users, new_items), collaborative.score(users)
        )
        return (self._weight * collaborative_new + (1.0 - self._weight) * content_new).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weight": np.array(self._weight, dtype=np.float64)}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._weight = float(state["weight"])
