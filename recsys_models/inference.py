"""Raw-id inference on a trained model, with the documented cold-start rule (see `base`)."""

import numpy as np
import polars as pl

from recsys_models.base import Recommender
from recsys_models.columns import ITEM_ID, RANK, SCORE, USER_ID
from recsys_models.history import History

PREDICTED_RATING = "predicted_rating"
COLD_USER = "cold_user"
UNKNOWN_ITEMS = "unknown_items"


def recommend_raw(model: Recommender, user_ids: np.ndarray, k: int = 10, exclude_seen: bool = True) -> pl.DataFrame:
    """Top-k per raw user id (seen items excluded unless `exclude_seen` is False):
    `user_id, item_id, score, rank, cold_user`.

    An unknown user gets the k most popular training items, score = their training count.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    user_ids = np.unique(np.asarray(user_ids, dtype=np.int64))
    index = model.users.index_of(user_ids)
    known = index >= 0
    top_items, top_scores = model.recommend(index[known], k, exclude_seen)
    width = top_items.shape[1]
    popular = model.popular_items(width)
    counts = model.item_counts[popular].astype(np.float32)
    n_cold = int((~known).sum())
    items = np.concatenate([top_items.ravel(), np.tile(popular, n_cold)])
    scores = np.concatenate([top_scores.ravel(), np.tile(counts, n_cold)])
    users = np.concatenate([np.repeat(user_ids[known], width), np.repeat(user_ids[~known], width)])
    cold = np.concatenate([np.zeros(known.sum() * width, bool), np.ones(n_cold * width, bool)])
    ranks = np.tile(np.arange(1, width + 1, dtype=np.int64), users.size // width if width else 0)
    frame = pl.DataFrame({USER_ID: users, ITEM_ID: model.items.ids[items], SCORE: scores, RANK: ranks, COLD_USER: cold})
    return frame.sort(USER_ID, RANK)


def recommend_histories_raw(
    model: Recommender, user_ids: np.ndarray, histories: list[np.ndarray], k: int = 10, exclude_seen: bool = True
) -> pl.DataFrame:
    """Top-k per (raw user id, history of raw item ids, oldest first), computed from the history
    (`Recommender.recommend_from_history`; the history's items excluded unless `exclude_seen` is
    False): `user_id, item_id, score, rank, cold_user, unknown_items`.

    `cold_user` is false where the history holds an item the model knows; a history with none gets
    the cold answer (the most popular training items, score = count) and `cold_user` true.
    `unknown_items` counts the history's items the model does not know (ignored).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    user_ids = np.asarray(user_ids, dtype=np.int64)
    given = [History(items, user_id=int(user)) for user, items in zip(user_ids, histories, strict=True)]
    answer = model.recommend_from_history(given, k, exclude_seen)
    width = answer.items.shape[1]
    cold = answer.unknown_items == np.array([len(history.items) for history in given], dtype=np.int64)
    return pl.DataFrame(
        {
            USER_ID: np.repeat(user_ids, width),
            ITEM_ID: model.items.ids[answer.items.ravel()],
            SCORE: answer.scores.ravel(),
            RANK: np.tile(np.arange(1, width + 1, dtype=np.int64), user_ids.size),
            COLD_USER: np.repeat(cold, width),
            UNKNOWN_ITEMS: np.repeat(answer.unknown_items, width),
        }
    )


def score_raw_pairs(model: Recommender, user_ids: np.ndarray, item_ids: np.ndarray) -> pl.DataFrame:
    """Ranking score (and predicted rating where the family has one) of raw (user, item) pairs:
    `user_id, item_id, score, cold_user` (+ `predicted_rating`).

    A pair with an unknown user scores the item's training count, the cold-start rule of
    `recommend_raw`, with `cold_user` true; a pair with an unknown item has a null score. A rating
    family predicts the training mean for the pairs it cannot score (its cold-start fallback).
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    users, items = model.users.index_of(user_ids), model.items.index_of(item_ids)
    known, cold = (users >= 0) & (items >= 0), (users < 0) & (items >= 0)
    scores = np.full(user_ids.size, np.nan, dtype=np.float32)
    if known.any():
        unique_users, inverse = np.unique(users[known], return_inverse=True)
        scores[known] = model.score(unique_users)[inverse, items[known]]
    scores[cold] = model.item_counts[items[cold]]
    frame = pl.DataFrame({USER_ID: user_ids, ITEM_ID: item_ids, SCORE: scores, COLD_USER: users < 0}).with_columns(
        pl.col(SCORE).fill_nan(None)
    )
    if model.predicts_ratings:
        predicted = np.full(user_ids.size, model.fallback_rating(), dtype=np.float32)
        if known.any():
            predicted[known] = model.predict(users[known], items[known])
        frame = frame.with_columns(pl.Series(PREDICTED_RATING, predicted))
    return frame
