"""Per-user item sequences from one split's interactions, and the padded arrays the networks read.

Within a user, interactions are ordered by `(timestamp, item_id)` (PROTOCOLS.md's tie order);
item indices follow the sorted raw ids, so ordering by index is ordering by id. Padded arrays
hold `item index + 1`, with `PAD` (0) on the left: a user's most recent item is always the last
column, which is where the networks read their prediction for the next item.
"""

from dataclasses import dataclass

import numpy as np

from recsys_models.interactions import Interactions

PAD = 0


@dataclass(frozen=True)
class Sequences:
    """Every user's items in time order, laid end to end: user u's are `items[indptr[u]:indptr[u + 1]]`."""

    indptr: np.ndarray
    items: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def user_sequences(data: Interactions) -> Sequences:
    """The users' items ordered by (timestamp, item id); users without interactions get none."""
    order = np.lexsort((data.item_idx, data.timestamp, data.user_idx))
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Sequences(indptr, data.item_idx[order].astype(np.int64))


def recent_items(sequences: Sequences, length: int) -> np.ndarray:
    """(n_users, length) array of each user's last `length` items (+1), left-padded with PAD."""
    kept = np.minimum(sequences.lengths, length)
    rows = np.repeat(np.arange(sequences.n_users), kept)
    rank = np.arange(rows.size) - np.repeat(np.cumsum(kept) - kept, kept)
    source = sequences.indptr[1:][rows] - kept[rows] + rank
    padded = np.full((sequences.n_users, length), PAD, dtype=np.int64)
    padded[rows, length - kept[rows] + rank] = sequences.items[source] + 1
    return padded


@dataclass(frozen=True)
class Windows:
    """Training examples: `inputs` (n, length) predict `targets` (n, length) one step ahead.

    Both hold item index + 1 with PAD where a column has no example; `users` is each row's user.
    """

    inputs: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    @property
    def n_tokens(self) -> int:
        """Number of predicted items (non-padded targets)."""
        return int((self.targets != PAD).sum())


def training_windows(sequences: Sequences, length: int) -> Windows:
    """Every item but a user's first is a target exactly once, in windows of `length` steps.

    A user's sequence is cut from its end into windows of `length` targets; each target's input is
    the item before it, and the earliest window of a user is left-padded. Windows end on the same
    column as the scoring input (the last), so the learned positions mean the same at both times.
    """
    n_targets = np.maximum(sequences.lengths - 1, 0)
    per_user = -(-n_targets // length)
    users = np.repeat(np.arange(sequences.n_users), per_user)
    window = np.arange(users.size) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    end = sequences.lengths[users] - window * length  # exclusive end position within the sequence
    position = end[:, None] - length + np.arange(length)[None, :]
    valid = position >= 1
    start = sequences.indptr[:-1][users][:, None]
    targets = np.where(valid, sequences.items[np.where(valid, start + position, 0)] + 1, PAD)
    inputs = np.where(valid, sequences.items[np.where(valid, start + position - 1, 0)] + 1, PAD)
    return Windows(inputs.astype(np.int64), targets.astype(np.int64), users.astype(np.int64))
