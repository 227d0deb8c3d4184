"""The one interactions type every family trains on: contiguous indices plus id vocabularies."""

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_models.columns import ITEM_ID, RATING, TIMESTAMP, USER_ID


@dataclass(frozen=True)
class IdVocabulary:
    """Sorted raw ids; the index of an id is its position. Built from the training split only."""

    ids: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"vocabulary ids must be one-dimensional, got shape {ids.shape}")
        if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):
            raise ValueError("vocabulary ids must be sorted and unique")
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_values(cls, values: np.ndarray) -> "IdVocabulary":
        return cls(np.unique(np.asarray(values, dtype=np.int64)))

    def __len__(self) -> int:
        return int(self.ids.size)

    def index_of(self, raw_ids: np.ndarray) -> np.ndarray:
        """Indices of `raw_ids`; -1 where an id is unknown (cold)."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        if self.ids.size == 0:
            return np.full(raw.shape, -1, dtype=np.int64)
        position = np.searchsorted(self.ids, raw)
        position = np.clip(position, 0, self.ids.size - 1)
        return np.where(self.ids[position] == raw, position, -1)


@dataclass(frozen=True)
class Interactions:
    """Immutable (user, item, rating, timestamp) rows with their vocabularies; checked at construction."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    users: IdVocabulary
    items: IdVocabulary
    _csr: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.user_idx.shape[0]
        for name in ("item_idx", "rating", "timestamp"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if n and (self.user_idx.min() < 0 or self.user_idx.max() >= len(self.users)):
            raise ValueError("user_idx out of the user vocabulary's range")
        if n and (self.item_idx.min() < 0 or self.item_idx.max() >= len(self.items)):
            raise ValueError("item_idx out of the item vocabulary's range")
        if not np.all(np.isfinite(self.rating)):
            raise ValueError("ratings must be finite")

    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        users: IdVocabulary | None = None,
        items: IdVocabulary | None = None,
    ) -> "Interactions":
        """Build from a ratings frame; vocabularies default to the frame's own ids.

        With given vocabularies, every user and item of `frame` must be in them: keep
        cold rows out with `known_rows` first, so they are counted, not silently dropped.
        """
        users = users or IdVocabulary.from_values(frame[USER_ID].to_numpy())
        items = items or IdVocabulary.from_values(frame[ITEM_ID].to_numpy())
        user_idx = users.index_of(frame[USER_ID].to_numpy())
        item_idx = items.index_of(frame[ITEM_ID].to_numpy())
        if (user_idx < 0).any() or (item_idx < 0).any():
            raise ValueError("frame holds users or items outside the vocabularies; filter with known_rows first")
        return cls(
            user_idx=user_idx,
            item_idx=item_idx,
            rating=frame[RATING].to_numpy().astype(np.float32),
            timestamp=frame[TIMESTAMP].to_numpy().astype(np.int64),
            users=users,
            items=items,
        )

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    def tocsr(self, values: str = "rating") -> sp.csr_matrix:
        """User x item CSR matrix of ratings (`values="rating"`) or ones (`values="binary"`)."""
        if values not in ("rating", "binary"):
            raise ValueError(f"values must be 'rating' or 'binary', got {values!r}")
        data = self.rating if values == "rating" else np.ones(len(self), dtype=np.float32)
        matrix = sp.csr_matrix(
            (data, (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        matrix.sum_duplicates()
        return matrix

    def positives(self, min_rating: float | None = None) -> sp.csr_matrix:
        """Binary (n_users, n_items) matrix of the implicit positives: every interaction, or those
        rated at least `min_rating`; a pair rated twice is one positive."""
        keep = np.ones(len(self), dtype=bool) if min_rating is None else self.rating >= min_rating
        matrix = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (self.user_idx[keep], self.item_idx[keep])),
            shape=(self.n_users, self.n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def concat(self, other: "Interactions") -> "Interactions":
        """Rows of both, which must share vocabularies (e.g. a training split and its validation tail)."""
        if other.users is not self.users or other.items is not self.items:
            raise ValueError("can only concatenate interactions that share vocabularies")
        return Interactions(
            user_idx=np.concatenate([self.user_idx, other.user_idx]),
            item_idx=np.concatenate([self.item_idx, other.item_idx]),
            rating=np.concatenate([self.rating, other.rating]),
            timestamp=np.concatenate([self.timestamp, other.timestamp]),
            users=self.users,
            items=self.items,
        )

    def item_counts(self) -> np.ndarray:
        """Number of interactions of each item."""
        return np.bincount(self.item_idx, minlength=self.n_items)


def known_rows(frame: pl.DataFrame, users: IdVocabulary, items: IdVocabulary) -> pl.Series:
    """Boolean mask of rows whose user and item are both in the vocabularies."""
    known_user = users.index_of(frame[USER_ID].to_numpy()) >= 0
    known_item = items.index_of(frame[ITEM_ID].to_numpy()) >= 0
    return pl.Series("known", known_user & known_item)
