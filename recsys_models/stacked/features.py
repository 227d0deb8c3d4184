"""Features of each (user, item) candidate for the stacked family's ranker.

Per part: its score standardised over the user's candidates and its rank over the user's
allowed items; how many parts proposed the item. Context from the data the parts were fitted on
(`ContextStats`, "now" being its last timestamp): the item's popularity, the share of its
interactions in the last `recent_days`, days since its last interaction and since its first
(its age in the catalogue), the user's history length and days since their last interaction
(a known user's from `ContextStats`; a history's from itself, `history_context`), the item's era
relative to the user (days from the user's last interaction to the item's first,
and the item's share of all interactions in the `window_days` before and after the user's last
one: what was popular when the user was active, which matters where users' periods differ, as in
MovieLens across two decades), and, where the source has item features, the content similarity of the item to the user's
history (a `content_tfidf` part's score).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.stacked.candidates import Candidates

SECONDS_PER_DAY = 86_400.0
RECENT_DAYS = 30.0
WINDOW_DAYS = 90.0
TIME_SPAN = np.int64(1) << np.int64(34)  # seconds (about 540 years): item-major sort keys of (item, time)
CONTEXT_FEATURES = (
    "n_proposers",
    "item_log_count",
    "item_recent_share",
    "item_days_since_last",
    "item_age_days",
    "user_log_history",
    "user_days_since_last",
    "item_first_after_user_days",
    "item_share_before_user",
    "item_share_after_user",
)
CONTENT_FEATURES = ("content_similarity", "content_similarity_z")


@dataclass(frozen=True)
class ContextStats:
    """Per-item and per-user counts and times of the interactions the parts were fitted on."""

    item_count: np.ndarray
    item_recent: np.ndarray
    item_first: np.ndarray
    item_last: np.ndarray
    user_count: np.ndarray
    user_last: np.ndarray
    now: np.ndarray  # shape (), the last timestamp
    origin: np.ndarray  # shape (), the first timestamp
    item_time_keys: np.ndarray  # sorted item * TIME_SPAN + (timestamp - origin) of every interaction
    times: np.ndarray  # every interaction's timestamp, sorted

    @classmethod
    def from_interactions(cls, data: Interactions, recent_days: float = RECENT_DAYS) -> "ContextStats":
        now = np.int64(data.timestamp.max(initial=0))
        origin = np.int64(data.timestamp.min(initial=0))
        recent = data.timestamp >= now - recent_days * SECONDS_PER_DAY
        big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        item_first = np.full(data.n_items, big, dtype=np.int64)
        np.minimum.at(item_first, data.item_idx, data.timestamp)
        item_last = np.full(data.n_items, small, dtype=np.int64)
        np.maximum.at(item_last, data.item_idx, data.timestamp)
        user_last = np.full(data.n_users, small, dtype=np.int64)
        np.maximum.at(user_last, data.user_idx, data.timestamp)
        return cls(
            item_count=np.bincount(data.item_idx, minlength=data.n_items).astype(np.float32),
            item_recent=np.bincount(data.item_idx[recent], minlength=data.n_items).astype(np.float32),
            item_first=np.where(item_first == big, now, item_first),
            item_last=np.where(item_last == small, now, item_last),
            user_count=np.bincount(data.user_idx, minlength=data.n_users).astype(np.float32),
            user_last=np.where(user_last == small, now, user_last),
            now=np.array(now, dtype=np.int64),
            origin=np.array(origin, dtype=np.int64),
            item_time_keys=np.sort(data.item_idx.astype(np.int64) * TIME_SPAN + (data.timestamp - origin)),
            times=np.sort(data.timestamp.astype(np.int64)),
        )

    def user_context(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(interaction count, latest timestamp) of known users."""
        return self.user_count[users], self.user_last[users]

    def history_context(self, history: HistoryBatch) -> tuple[np.ndarray, np.ndarray]:
        """(interaction count, latest timestamp) of each history row, as `user_context` reads a user's
        training rows; a row without timestamps (or without rows) is current: its latest is `now`."""
        rows = history.rows
        small = np.iinfo(np.int64).min
        last = np.full(len(history), small, dtype=np.int64)
        np.maximum.at(last, rows.user_idx, rows.timestamp.astype(np.int64))
        last = np.where(history.timed & (last != small), last, self.now).astype(np.int64)
        return np.bincount(rows.user_idx, minlength=len(history)).astype(np.float32), last

    def item_share_between(self, items: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Each item's interactions in [start, end) over all interactions in that window (0 when none)."""
        low = np.clip(start - self.origin, 0, TIME_SPAN - 1)
        high = np.clip(end - self.origin, 0, TIME_SPAN - 1)
        base = items.astype(np.int64) * TIME_SPAN
        own = np.searchsorted(self.item_time_keys, base + high) - np.searchsorted(self.item_time_keys, base + low)
        total = np.searchsorted(self.times, end) - np.searchsorted(self.times, start)
        return (own / np.maximum(total, 1)).astype(np.float64)

    def to_state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{name}": getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, prefix: str, state: dict[str, np.ndarray]) -> "ContextStats":
        return cls(**{name: state[f"{prefix}{name}"] for name in cls.__dataclass_fields__})


def feature_names(part_names: Sequence[str], content: bool) -> list[str]:
    """The ranker's columns, in order."""
    per_part = [f"{part}_{kind}" for part in part_names for kind in ("score_z", "rank")]
    return per_part + list(CONTEXT_FEATURES) + (list(CONTENT_FEATURES) if content else [])


def per_user_standardised(values: np.ndarray, candidates: Candidates) -> np.ndarray:
    """Each column minus its mean over the user's candidates, over their deviation (0 when constant)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(candidates), -1)
    rows = candidates.user_rows
    count = np.maximum(np.bincount(rows, minlength=candidates.users.size), 1)[:, None]
    total = np.zeros((candidates.users.size, values.shape[1]))
    np.add.at(total, rows, values)
    mean = total / count
    centred = values - mean[rows]
    squares = np.zeros_like(total)
    np.add.at(squares, rows, centred**2)
    std = np.sqrt(squares / count)[rows]
    return np.where(std > 0, centred / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)


def build_features(
    candidates: Candidates,
    stats: ContextStats,
    user_count: np.ndarray,
    user_last: np.ndarray,
    content_scores: np.ndarray | None,
) -> np.ndarray:
    """(len(candidates), n_features) float32 matrix in `feature_names` order. `user_count` and
    `user_last` are the interaction count and latest timestamp of each of `candidates.users`
    (`ContextStats.user_context`, `history_context`); `content_scores` is the content part's score
    of each candidate row, or None when the model has no content part."""
    n_parts = candidates.scores.shape[1]
    standardised = per_user_standardised(candidates.scores, candidates)
    per_part = np.empty((len(candidates), 2 * n_parts), dtype=np.float32)
    per_part[:, 0::2] = standardised
    per_part[:, 1::2] = candidates.ranks
    rows, items = candidates.user_rows, candidates.items
    now = float(stats.now)
    user_last, window = np.asarray(user_last, dtype=np.int64)[rows], np.int64(WINDOW_DAYS * SECONDS_PER_DAY)
    count = stats.item_count[items]
    context = np.column_stack(
        [
            candidates.proposed.sum(axis=1),
            np.log1p(count),
            stats.item_recent[items] / np.maximum(count, 1.0),
            (now - stats.item_last[items]) / SECONDS_PER_DAY,
            (now - stats.item_first[items]) / SECONDS_PER_DAY,
            np.log1p(np.asarray(user_count, dtype=np.float32)[rows]),
            (now - user_last) / SECONDS_PER_DAY,
            (stats.item_first[items] - user_last) / SECONDS_PER_DAY,
            stats.item_share_between(items, user_last - window, user_last + 1),
            stats.item_share_between(items, user_last + 1, user_last + 1 + window),
        ]
    ).astype(np.float32)
    blocks = [per_part, context]
    if content_scores is not None:
        content_scores = np.asarray(content_scores, dtype=np.float32)
        blocks.append(np.column_stack([content_scores, per_user_standardised(content_scores, candidates)[:, 0]]))
    return np.hstack(blocks).astype(np.float32)
