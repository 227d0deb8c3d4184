"""First-order Markov baseline: the next item follows the last one as often as it did in training.

The simple reference for sequence models (the transition-count model that FPMC, Rendle et al.
2010, factorises). T[i, j] counts how often item j directly followed item i in a user's history
(train + valid, ordered by timestamp then item id). A user's score for j is sum over their last
`n_recent` items of decay ** age * T[i, j] / (count of i's transitions), plus
`popularity_weight` times j's share of interactions, which breaks ties and ranks items after an
item never seen followed.
"""

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.sequential.sequences import PAD, recent_items, user_sequences
from recsys_models.tuning import FloatRange, IntRange, SearchSpace


class MarkovConfig(BaseModel):
    """Hyperparameters of the Markov baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search_space: ClassVar[SearchSpace] = {
        "n_recent": IntRange(1, 5),
        "decay": FloatRange(0.1, 1.0),
        "popularity_weight": FloatRange(1e-5, 1e-1, log=True),
    }

    n_recent: PositiveInt = Field(default=1, description="Most recent items whose transitions are summed.")
    decay: float = Field(default=0.5, gt=0.0, le=1.0, description="Weight factor per step back in time.")
    popularity_weight: NonNegativeFloat = Field(
        default=1e-3, description="Weight of item popularity (share of interactions) added to every score."
    )


class Markov(Recommender):
    """Item-to-next-item transition counts; ranks, does not rate."""

    family = "markov"
    config_type = MarkovConfig
    config: MarkovConfig
    predicts_ratings = False

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        sequences = user_sequences(train)
        follows = np.ones(sequences.items.size, dtype=bool)
        follows[sequences.indptr[:-1][sequences.lengths > 0]] = False  # a user's first item follows nothing
        following = np.flatnonzero(follows)
        counts = sp.csr_matrix(
            (np.ones(following.size, dtype=np.float32), (sequences.items[following - 1], sequences.items[following])),
            shape=(train.n_items, train.n_items),
        )
        counts.sum_duplicates()
        totals = np.asarray(counts.sum(axis=1)).ravel()
        self._transitions = sp.csr_matrix(sp.diags(1.0 / np.maximum(totals, 1.0)) @ counts, dtype=np.float32)
        self._popularity = (train.item_counts() / len(train)).astype(np.float32)
        self._recent = recent_items(sequences, self.config.n_recent)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self._score_recent(self._recent[self._check_users(user_indices)])

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Transitions from the history's last `n_recent` items, in its order (module docstring): exact."""
        return self._score_recent(recent_items(user_sequences(history.rows), self.config.n_recent))

    def _score_recent(self, recent: np.ndarray) -> np.ndarray:
        """Scores after each row of recent items (n_rows, n_recent; +1, PAD-padded on the left)."""
        n_rows = recent.shape[0]
        weights = self.config.decay ** np.arange(recent.shape[1] - 1, -1, -1, dtype=np.float64)
        rows = np.repeat(np.arange(n_rows), recent.shape[1])
        present = recent.ravel() != PAD
        mix = sp.csr_matrix(
            (np.tile(weights, n_rows)[present], (rows[present], recent.ravel()[present] - 1)),
            shape=(n_rows, self.n_items),
        )
        scores = np.asarray((mix @ self._transitions).todense(), dtype=np.float32)
        return scores + self.config.popularity_weight * self._popularity

    def _state(self) -> dict[str, np.ndarray]:
        transitions = self._transitions
        return {
            "transition_indptr": transitions.indptr,
            "transition_indices": transitions.indices,
            "transition_data": transitions.data,
            "popularity": self._popularity,
            "recent": self._recent,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        arrays = (state["transition_data"], state["transition_indices"], state["transition_indptr"])
        self._transitions = sp.csr_matrix(arrays, shape=(self.n_items, self.n_items))
        self._popularity = state["popularity"]
        self._recent = state["recent"]
