"""Switching hybrid: content scores where collaborative filtering has too little to go on,
collaborative scores elsewhere (Burke 2002, "Hybrid Recommender Systems: Survey and
Experiments", the switching design).

A user with fewer than `threshold` training interactions is ranked by content, the others by
the collaborative component; an item absent from training is always scored by content (the only
part that can reach it). The threshold is chosen from `thresholds` by NDCG@10 on the validation
tail (parts trained on train only, counts from train), then both parts are retrained on
train + valid. 0 means "always collaborative for known items": on MovieLens, where every user
has at least 20 ratings, that is the expected choice, and the hybrid then equals its component
on warm items and the content model on cold ones. Validation chose 0 on ml-latest-small and
ml-100k, P2 and P4 (benchmarks/cold_start_quality.py, seed 42): on these data sets switching
does not help warm users; it only adds the cold items.
"""

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, NonNegativeInt, model_validator

from recsys_models.base import Recommender
from recsys_models.features import ItemFeatures
from recsys_models.history import HistoryBatch
from recsys_models.hybrid.parts import (
    COLLABORATIVE,
    CONTENT,
    BlendConfig,
    CompositeRecommender,
    per_user_ndcg,
    validation_targets,
)
from recsys_models.interactions import Interactions

logger = logging.getLogger(__name__)


class HybridSwitchingConfig(BlendConfig):
    """Hyperparameters of the switching hybrid; the threshold itself is fitted on validation."""

    thresholds: tuple[NonNegativeInt, ...] = Field(
        default=(0, 5, 10, 20, 30, 50, 100),
        description="Candidate history sizes below which a user gets content scores; chosen by validation NDCG@10.",
    )
    default_threshold: NonNegativeInt = Field(
        default=0, description="The threshold when the validation tail has no relevant row."
    )

    @model_validator(mode="after")
    def _valid_parts(self) -> "HybridSwitchingConfig":
        if not self.thresholds:
            raise ValueError("thresholds must not be empty")
        return self


class HybridSwitching(CompositeRecommender):
    """Content for light users and cold items, the collaborative component otherwise; ranks, does not rate."""

    family = "hybrid_switching"
    config_type = HybridSwitchingConfig
    config: HybridSwitchingConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True
    needs_item_features = True
    scores_new_items = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        targets = validation_targets(train, valid, config.relevance_threshold) if valid is not None else None
        self._threshold = config.default_threshold
        if targets is not None:
            self._parts = self._fit_parts(train, None, item_features)
            users, ndcg = per_user_ndcg(
                lambda batch: {part: self._parts[part].score(batch) for part in (COLLABORATIVE, CONTENT)}, *targets
            )
            history = np.bincount(train.user_idx, minlength=train.n_users)[users]
            mean = {
                t: float(np.where(history < t, ndcg[CONTENT], ndcg[COLLABORATIVE]).mean()) for t in config.thresholds
            }
            self._threshold = min(config.thresholds, key=lambda t: (-mean[t], t))
            self.history = [
                {
                    "epoch": index + 1,
                    "threshold": t,
                    "valid_ndcg_at_10": mean[t],
                    "content_users": int((history < t).sum()),
                }
                for index, t in enumerate(config.thresholds)
            ]
            logger.info(
                "%s: threshold %d (validation NDCG@10 %.4f on %d users)",
                self.family,
                self._threshold,
                mean[self._threshold],
                users.size,
            )
        else:
            logger.warning("%s: no relevant validation row, threshold %d", self.family, self._threshold)
        self._parts = self._fit_parts(train, valid, item_features)

    @property
    def threshold(self) -> int:
        """Users with fewer training interactions than this get content scores."""
        return int(self._threshold)

    def uses_content(self, user_indices: np.ndarray) -> np.ndarray:
        """Which of these users are ranked by content (history below the threshold)."""
        return np.diff(self.seen.indptr)[self._check_users(user_indices)] < self._threshold

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        return self._switch(self.uses_content(users), lambda rows, part: part.score(users[rows]))

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Content for a history of fewer distinct items than the threshold, the collaborative part
        otherwise, each part scoring the history: exact where the parts are."""
        light = np.diff(history.rows.tocsr("binary").indptr) < self._threshold
        return self._switch(light, lambda rows, part: part.score_history(history.subset(rows)))

    def _switch(self, content_rows: np.ndarray, score: Callable[[np.ndarray, Recommender], np.ndarray]) -> np.ndarray:
        """Rows scored by the content part where `content_rows`, by the collaborative one elsewhere;
        `score(rows, part)` scores the given row indices with a part."""
        scores = np.empty((content_rows.size, self.n_items), dtype=np.float32)
        for chosen, part in ((content_rows, CONTENT), (~content_rows, COLLABORATIVE)):
            if chosen.any():
                scores[chosen] = score(np.flatnonzero(chosen), self.part(part))
        return scores

    def score_new_items(self, user_indices: np.ndarray, new_items: ItemFeatures) -> np.ndarray:
        return self.part(CONTENT).score_new_items(self._check_users(user_indices), new_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"threshold": np.array(self._threshold, dtype=np.int64)}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._threshold = int(state["threshold"])
