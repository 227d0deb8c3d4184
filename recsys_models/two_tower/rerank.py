"""Two-stage recommendation: candidates from the two-tower index, re-ranked by another family.

Stage one retrieves each user's top `n_candidates` unseen items from the `two_tower` ANN index
(exact search with `exact_search = True`); stage two orders them by the scores of a second
registered family (`ranker`, EASE by default) trained on the same data inside `fit`. Both
models are saved in the model folder (`retriever/`, `ranker/`). `score` gives the ranker's
scores on the candidates and, below all of them, a constant on every other item, so that
ranking by `score` and `recommend` agree.
"""

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.leaf_families import leaf_class, load_leaf, make_leaf_config
from recsys_models.options import TrainingOptions
from recsys_models.tuning import IntRange, SearchSpace
from recsys_models.two_tower.model import TwoTower, TwoTowerConfig

RETRIEVER_DIR = "retriever"
RANKER_DIR = "ranker"


class TwoTowerRerankConfig(BaseModel):
    """The retriever's config, the re-ranking family and how many candidates it re-ranks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search_space: ClassVar[SearchSpace] = {"n_candidates": IntRange(50, 1000, log=True)}

    retriever: TwoTowerConfig = Field(default_factory=TwoTowerConfig, description="Stage one: the two-tower model.")
    ranker: str = Field(
        default="ease", description="Stage two: a leaf family (built on no other) that scores the candidates."
    )
    ranker_config: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters of the ranker.")
    n_candidates: PositiveInt = Field(default=200, description="Candidates retrieved per user (at least k are).")

    @model_validator(mode="after")
    def _ranker_is_a_family(self) -> "TwoTowerRerankConfig":
        if self.ranker in ("two_tower_rerank", "two_tower"):
            raise ValueError(f"ranker must be another family than {self.ranker!r}")
        make_leaf_config(self.ranker, self.ranker_config)  # unknown family or keys fail here, not after training
        return self


class TwoTowerRerank(Recommender):
    """Two-tower candidates re-ranked by a second family; ranks, does not rate."""

    family = "two_tower_rerank"
    config_type = TwoTowerRerankConfig
    config: TwoTowerRerankConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        self.exact_search = False  # True: retrieve candidates by brute force instead of the index
        self._retriever: TwoTower | None = None
        self._ranker: Recommender | None = None

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        self._retriever = TwoTower(config.retriever, self.options).fit(train, valid, item_features)
        ranker = leaf_class(config.ranker)(make_leaf_config(config.ranker, config.ranker_config), self.options)
        self._ranker = ranker.fit(train, valid, item_features)
        self.history = [
            {"epoch": r["epoch"], **{f"retriever_{k}": v for k, v in r.items() if k != "epoch"}}
            for r in self._retriever.history
        ]

    @property
    def retriever(self) -> TwoTower:
        return self._require(self._retriever)

    @property
    def ranker(self) -> Recommender:
        return self._require(self._ranker)

    def candidates(self, user_indices: np.ndarray, k: int, exclude_seen: bool = True) -> np.ndarray:
        """Stage one: the retriever's top max(k, n_candidates) items per user; -1 marks an empty slot."""
        depth = max(k, self.config.n_candidates)
        ids, scores = self.retriever.recommend(user_indices, depth, exclude_seen, exact=self.exact_search)
        return np.where(np.isneginf(scores), -1, ids)

    def _ranked(self, users: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Candidates ordered by the ranker, best first, with the ranker's scores (-inf on empty slots)."""
        candidates = self.candidates(users, k, exclude_seen)
        scores = np.take_along_axis(self.ranker.score(users), np.maximum(candidates, 0), 1).astype(np.float32)
        scores = np.where(candidates < 0, -np.inf, scores)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(candidates, order, 1), np.take_along_axis(scores, order, 1)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Ranker scores on the candidates; every other item one below the user's lowest candidate."""
        users = self._check_users(user_indices)
        return self._spread(*self._ranked(users, self.config.n_candidates, exclude_seen=True))

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """As `score`, from the history: candidates are the retriever's top `n_candidates` from the
        history (brute force: the index serves trained users only), the history's items left out,
        scored by the ranker from the history. Exact where the ranker is, for a known user with
        `exact_search`."""
        retrieved = self.retriever.score_history(history)
        retrieved[history.rows.tocsr("binary").nonzero()] = -np.inf
        candidates = np.argsort(-retrieved, axis=1, kind="stable")[:, : min(self.config.n_candidates, self.n_items)]
        candidates = np.where(np.isneginf(np.take_along_axis(retrieved, candidates, 1)), -1, candidates)
        scores = np.take_along_axis(self.ranker.score_history(history), np.maximum(candidates, 0), 1)
        return self._spread(candidates, np.where(candidates < 0, -np.inf, scores).astype(np.float32))

    def _spread(self, candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Full score rows: the candidates' scores (-1 and -inf mark empty slots), every other item
        one below the row's lowest candidate."""
        finite = np.where(np.isneginf(scores), np.inf, scores)
        floor = np.where(np.isfinite(finite.min(axis=1, initial=np.inf)), finite.min(axis=1, initial=np.inf), 0.0)
        full = np.repeat((floor - 1.0)[:, None], self.n_items, axis=1).astype(np.float32)
        rows, slots = np.nonzero(candidates >= 0)
        full[rows, candidates[rows, slots]] = scores[rows, slots]
        return full

    def recommend(
        self, user_indices: np.ndarray, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the re-ranked candidates; -inf scores mark slots the retriever could not fill."""
        users = self._check_users(user_indices)
        k = min(k, self.n_items)
        items, scores = self._ranked(users, k, exclude_seen)
        return items[:, :k], scores[:, :k]

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        """Nothing of its own: the two stages are loaded from their folders."""

    def save(self, directory: Path) -> None:
        """The shared files, plus the retriever (with its index) and the ranker in sub-folders."""
        super().save(directory)
        self.retriever.save(directory / RETRIEVER_DIR)
        self.ranker.save(directory / RANKER_DIR)

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = super().load(directory)
        model._retriever = TwoTower.load(directory / RETRIEVER_DIR)
        model._ranker = load_leaf(directory / RANKER_DIR)
        return model
