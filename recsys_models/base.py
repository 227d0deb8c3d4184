"""The one recommender interface of every family; `recommend` and persistence are written once here.

Cold-start rule (the only one): users and items are known when they occur in the training
split. The library scores known indices only. Callers map raw ids with the model's vocabularies
(`users.index_of`), and an unknown user gets `popular_items` (most-interacted training items);
rating prediction for an unknown user or item falls back to the family's `fallback_rating`.
Anyone with a history, a user unknown at training time included, is scored from it instead
(`recommend_from_history`, `history.py`); a history of unknown items only gets the cold answer.
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel

from recsys_models.exceptions import NotFittedError
from recsys_models.features import ItemFeatures
from recsys_models.history import History, HistoryBatch, HistoryRecommendations, map_histories
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.io import atomic_write_json, atomic_write_npz
from recsys_models.options import TrainingOptions
from recsys_models.top_k import top_k

MODEL_FILE = "model.json"
STATE_FILE = "state.npz"
VOCAB_FILE = "vocabulary.npz"


class Recommender(ABC):
    """A trained model over the users and items of one training split.

    Subclasses set `family`, `config_type` and `predicts_ratings`, and implement `_fit`,
    `score`, `score_history`, `_state` and `_restore`. Families that predict ratings also
    implement `predict`.
    """

    family: ClassVar[str]
    config_type: ClassVar[type[BaseModel]]
    predicts_ratings: ClassVar[bool] = False
    uses_validation: ClassVar[bool] = False
    uses_item_features: ClassVar[bool] = False  # fit() then expects `features.ItemFeatures` (may be None)
    needs_item_features: ClassVar[bool] = False  # ... and cannot fit without them
    scores_new_items: ClassVar[bool] = False  # implements `score_new_items` (items absent from training)
    needs_ratings: ClassVar[bool] = False  # learns only to predict ratings: nothing to learn from implicit feedback
    recommends_seen: ClassVar[bool] = False  # meant for repeat consumption: seen items are its answer

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        config = config if config is not None else self.config_type()
        if not isinstance(config, self.config_type):
            raise TypeError(f"{self.family} expects a {self.config_type.__name__}, got {type(config).__name__}")
        self.config = config
        self.options = options or TrainingOptions()
        self.history: list[dict[str, float]] = []
        self._users: IdVocabulary | None = None
        self._items: IdVocabulary | None = None
        self._seen: sp.csr_matrix | None = None
        self._item_counts: np.ndarray | None = None

    # --- training -------------------------------------------------------------------------
    def fit(self, train: Interactions, valid: Interactions | None = None, item_features: Any = None) -> Self:
        """Learn from `train` and `valid` together; `valid` is the held-out tail of the training data.

        Families with `uses_validation` select epochs or hyperparameters on `valid` (and may refit
        on everything); the others simply train on both. Either way the user's history (the
        items excluded from their recommendations) is train + valid.
        """
        if len(train) == 0:
            raise ValueError(f"{self.family}: cannot fit on an empty training set")
        full = train if valid is None else train.concat(valid)
        self._users, self._items = full.users, full.items
        self._seen = full.tocsr(values="binary")
        self._item_counts = full.item_counts()
        if self.uses_validation:
            self._fit(train, valid, item_features)
        else:
            self._fit(full, None, item_features)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        """Family-specific training."""

    # --- scoring --------------------------------------------------------------------------
    @abstractmethod
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Ranking scores, shape (len(user_indices), n_items), float32; higher is better."""

    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Predicted ratings for (user, item) index pairs; only for families that predict ratings."""
        raise NotImplementedError(f"{self.family} ranks items and does not predict ratings")

    def score_new_items(self, user_indices: np.ndarray, new_items: ItemFeatures) -> np.ndarray:
        """Scores of known users for items absent from training, from their features alone, shape
        (len(user_indices), len(new_items.items)), comparable within a user's row; only for families
        with `scores_new_items` (the others cannot reach a cold item)."""
        raise NotImplementedError(f"{self.family} cannot score items absent from training")

    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        """The trained network's parameters by name, from which a later fit on newer data may start
        (`warm_start`); None for a family without one (a refresh refits it from scratch)."""
        return None

    def fallback_rating(self) -> float:
        """The rating predicted for an unknown user or item: the family's global mean."""
        raise NotImplementedError(f"{self.family} ranks items and does not predict ratings")

    def recommend(
        self, user_indices: np.ndarray, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and their scores per user, best first, shape (n_users, k)."""
        users = self._check_users(user_indices)
        return top_k(self.score(users), k, self.seen[users] if exclude_seen else None)

    # --- scoring a history given now (issue 20) -------------------------------------------
    def unweighted_history_weight(self) -> float:
        """The weight of each item of a history given without weights: one interaction. Families
        that regress ratings override it (an item someone chose counts as liked)."""
        return 1.0

    def history_batch(self, histories: Sequence[History]) -> HistoryBatch:
        """`histories` on this model's vocabularies, unknown items dropped and counted (`history`)."""
        return map_histories(histories, self.items, self.users, self.unweighted_history_weight())

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Ranking scores, (len(history), n_items), of each row as if it were a user's training
        history (train + valid), without retraining: a known user's own history gives their
        `score` row (exactly for closed-form families, closely for iterative ones). Every row
        holds at least one item the model knows. The per-family hook of `recommend_from_history`.
        """
        raise NotImplementedError(f"{self.family} cannot score a history given at scoring time")

    def recommend_from_history(
        self, histories: Sequence[History], k: int = 10, exclude_seen: bool = True
    ) -> HistoryRecommendations:
        """Top-k items per history, computed from the history alone (the model is not retrained).

        With `exclude_seen`, the history's own items are left out. A history without any item the
        model knows gets the cold-start answer, the most-interacted training items (score: count).
        """
        batch = self.history_batch(histories)
        scores = np.tile(self.item_counts.astype(np.float32), (len(batch), 1))
        filled = np.flatnonzero(batch.lengths > 0)
        if filled.size:
            scores[filled] = self.score_history(batch.subset(filled))
        items, top = top_k(scores, k, batch.rows.tocsr("binary") if exclude_seen else None)
        return HistoryRecommendations(items, top, batch.unknown_items)

    @property
    def item_counts(self) -> np.ndarray:
        """Training interactions per item (train + valid)."""
        return self._require(self._item_counts)

    def popular_items(self, k: int = 10) -> np.ndarray:
        """The cold-user answer: the k most-interacted training items (ties by index)."""
        return np.argsort(-self.item_counts, kind="stable")[:k]

    # --- vocabularies and state -----------------------------------------------------------
    @property
    def users(self) -> IdVocabulary:
        return self._require(self._users)

    @property
    def items(self) -> IdVocabulary:
        return self._require(self._items)

    @property
    def seen(self) -> sp.csr_matrix:
        return self._require(self._seen)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def _require(self, value: Any) -> Any:
        if value is None:
            raise NotFittedError(f"{self.family} is not fitted: call fit() or load() first")
        return value

    def _check_users(self, user_indices: np.ndarray) -> np.ndarray:
        users = np.asarray(user_indices, dtype=np.int64)
        if users.size and (users.min() < 0 or users.max() >= len(self.users)):
            raise ValueError(f"{self.family}: user indices must lie in [0, {len(self.users)}); map raw ids first")
        return users

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The learned arrays to save."""

    @abstractmethod
    def _restore(self, state: dict[str, np.ndarray]) -> None:
        """Set the learned arrays from `_state`'s output."""

    def save(self, directory: Path) -> None:
        """Config JSON plus arrays (.npz); no pickled Python objects."""
        directory.mkdir(parents=True, exist_ok=True)
        seen = self.seen
        atomic_write_npz(
            directory / VOCAB_FILE,
            users=self.users.ids,
            items=self.items.ids,
            seen_indptr=seen.indptr,
            seen_indices=seen.indices,
            item_counts=self.item_counts,
        )
        atomic_write_npz(directory / STATE_FILE, **self._state())
        atomic_write_json(
            directory / MODEL_FILE,
            {
                "family": self.family,
                "config": self.config.model_dump(mode="json"),
                "options": self.options.model_dump(mode="json"),
                "history": self.history,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Load what `save` wrote; the family in the file must be this class's."""
        meta = json.loads((directory / MODEL_FILE).read_text())
        if meta["family"] != cls.family:
            raise ValueError(f"{directory} holds a {meta['family']!r} model, not {cls.family!r}")
        model = cls(cls.config_type(**meta["config"]), TrainingOptions(**meta["options"]))
        model.history = meta["history"]
        with np.load(directory / VOCAB_FILE) as vocab:
            model._users = IdVocabulary(vocab["users"])
            model._items = IdVocabulary(vocab["items"])
            n_users, n_items = len(model._users), len(model._items)
            indices = vocab["seen_indices"]
            model._seen = sp.csr_matrix(
                (np.ones(indices.size, dtype=np.float32), indices, vocab["seen_indptr"]), shape=(n_users, n_items)
            )
            model._item_counts = vocab["item_counts"]
        with np.load(directory / STATE_FILE) as state:
            model._restore({name: state[name] for name in state.files})
        return model
