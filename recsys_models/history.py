"""Histories given at scoring time: score what a user did, not who they are, without retraining.

A `History` is one user's interactions as raw item ids, in the order given, optionally with
weights (ratings, play counts; 1 each when absent) and timestamps (Unix seconds). Models map it
with `Recommender.history_batch` into a `HistoryBatch`: the histories as an `Interactions` over
pseudo-users (row r of the batch is user index r) and the model's item vocabulary, so every family
reads a history with the same code it reads its training data with (`tocsr`, `positives`,
`sequences.user_sequences`). Items the model does not know are dropped and counted per row.

Order: with timestamps, a history's items are ordered by (timestamp, item id), the training tie
order; without, the order given is kept (the timestamps are then the positions 0, 1, ...).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys_models.interactions import IdVocabulary, Interactions


@dataclass(frozen=True)
class History:
    """One user's interactions: raw item ids (int64 codes, see `ids`), optional weights and timestamps.

    `user_id` is the raw id of the user the history belongs to, when given: a family with per-user
    parameters that knows the user may use them (two_tower's id embedding), and user_knn never
    takes that user as their own neighbour. A user the model does not know is the same as None.
    """

    items: Sequence[int] | np.ndarray
    weights: Sequence[float] | np.ndarray | None = None
    timestamps: Sequence[int] | np.ndarray | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        items = np.asarray(self.items, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "items", items)
        for name, dtype in (("weights", np.float32), ("timestamps", np.int64)):
            values = getattr(self, name)
            if values is None:
                continue
            values = np.asarray(values, dtype=dtype).reshape(-1)
            if values.shape != items.shape:
                raise ValueError(f"history {name} has {values.size} values for {items.size} items")
            object.__setattr__(self, name, values)
        if self.weights is not None and not np.all(np.isfinite(self.weights)):
            raise ValueError("history weights must be finite")


@dataclass(frozen=True)
class HistoryBatch:
    """Histories mapped onto a model: `rows` holds row r's known items as user index r.

    `users` is each row's user index in the model (-1: unknown or not given), `unknown_items`
    the number of items each row dropped, `timed` whether each row came with timestamps.
    """

    rows: Interactions
    users: np.ndarray
    unknown_items: np.ndarray
    timed: np.ndarray

    def __len__(self) -> int:
        return self.rows.n_users

    @property
    def lengths(self) -> np.ndarray:
        """Known interactions per row."""
        return np.bincount(self.rows.user_idx, minlength=len(self))

    def subset(self, rows: np.ndarray) -> "HistoryBatch":
        """The batch of the given rows only, renumbered 0.. in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        position = np.full(len(self), -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        keep = position[self.rows.user_idx] >= 0
        data = self.rows
        subset = Interactions(
            user_idx=position[data.user_idx[keep]],
            item_idx=data.item_idx[keep],
            rating=data.rating[keep],
            timestamp=data.timestamp[keep],
            users=IdVocabulary(np.arange(rows.size)),
            items=data.items,
        )
        return HistoryBatch(subset, self.users[rows], self.unknown_items[rows], self.timed[rows])


@dataclass(frozen=True)
class HistoryRecommendations:
    """Top-k item indices and scores per history, best first, (n_histories, k); items dropped per history."""

    items: np.ndarray
    scores: np.ndarray
    unknown_items: np.ndarray


def map_histories(
    histories: Sequence[History], items: IdVocabulary, users: IdVocabulary, default_weight: float
) -> HistoryBatch:
    """`histories` on a model's vocabularies; an item the model lacks is dropped and counted, a
    history without weights gets `default_weight` on each item."""
    histories = list(histories)
    if not all(isinstance(history, History) for history in histories):
        raise TypeError("histories must be a list of recsys_models.history.History")
    lengths = np.array([len(history.items) for history in histories], dtype=np.int64)
    index = items.index_of(np.concatenate([np.zeros(0, np.int64), *(history.items for history in histories)]))
    known = index >= 0
    row = np.repeat(np.arange(len(histories)), lengths)
    # History.__post_init__ made items, weights and timestamps 1-d arrays (np.asarray: no copy)
    weights = np.concatenate(
        [np.zeros(0, np.float32)]
        + [
            np.asarray(h.weights) if h.weights is not None else np.full(len(h.items), default_weight, np.float32)
            for h in histories
        ]
    )
    timestamps = np.concatenate(  # without timestamps, the positions: the order given
        [np.zeros(0, np.int64)]
        + [np.asarray(h.timestamps) if h.timestamps is not None else np.arange(len(h.items)) for h in histories]
    )
    user_ids = np.array([-1 if h.user_id is None else h.user_id for h in histories], dtype=np.int64)
    user_index = np.where(user_ids >= 0, users.index_of(user_ids), -1)
    rows = Interactions(
        user_idx=row[known],
        item_idx=index[known],
        rating=weights[known].astype(np.float32),
        timestamp=timestamps[known].astype(np.int64),
        users=IdVocabulary(np.arange(len(histories))),
        items=items,
    )
    return HistoryBatch(
        rows,
        user_index.astype(np.int64),
        np.bincount(row[~known], minlength=len(histories)).astype(np.int64),
        np.array([h.timestamps is not None for h in histories], dtype=bool),
    )
