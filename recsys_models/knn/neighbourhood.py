"""What item-item and user-user kNN share: the config, the baseline, rating prediction and persistence.

Rating prediction (Resnick et al., CSCW 1994; Sarwar et al., WWW 2001; Koren, TKDD 2010 eq. 3):

    r(u, i) = offset(u, i) + sum_n s_n (r_n - offset_n) / sum_n s_n

over the `prediction_neighbours` most similar neighbours that have an observation for the pair (the
items u rated, for item-item; the users who rated i, for user-user). The offset is the bias baseline
mu + b_u + b_i (`prediction="baseline"`) or the entity's mean rating (`prediction="mean_centred"`).
With fewer than `min_neighbours` such neighbours the prediction is the bias baseline. Predictions
are clipped to the training rating range. Every step is sparse algebra over a batch of pairs.
"""

from abc import abstractmethod
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt, model_validator

from recsys_models.base import Recommender
from recsys_models.bias import Biases, fit_biases
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.knn.similarity import Measure, top_k_per_row, top_k_similarity

PAIR_CHUNK = 16_384  # (user, item) pairs per block of rating predictions
BASELINE_PASSES = 2  # alternating passes of the bias baseline, as the bias family's default


class KNNConfig(BaseModel):
    """Hyperparameters shared by the neighbourhood families; the families override the defaults that differ."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    similarity: Measure = Field(default="cosine", description="Similarity measure (see knn.similarity).")
    values: Literal["rating", "binary"] = Field(
        default="rating",
        description="Data the similarities are computed on and the ranking scores sum over; binary needs cosine.",
    )
    n_neighbours: PositiveInt = Field(
        default=500, description="Most similar neighbours kept per entity: the candidates of a rating prediction."
    )
    ranking_neighbours: PositiveInt = Field(
        default=500, description="Most similar kept neighbours of each entity that ranking scores sum over."
    )
    shrinkage: NonNegativeFloat = Field(
        default=10.0, description="Significance shrinkage: similarity * n / (n + shrinkage), n co-observations."
    )
    min_similarity: NonNegativeFloat = Field(default=0.0, description="Only similarities above this are kept.")
    prediction: Literal["baseline", "mean_centred"] = Field(
        default="baseline", description="Offset of rating prediction: bias baseline or the entity's mean rating."
    )
    prediction_neighbours: PositiveInt = Field(
        default=40, description="Most similar observed neighbours averaged in one rating prediction."
    )
    min_neighbours: PositiveInt = Field(
        default=5, description="Fewer observed neighbours than this: predict the bias baseline."
    )
    baseline_item_damping: NonNegativeFloat = Field(default=2.5, description="Item damping of the bias baseline.")
    baseline_user_damping: NonNegativeFloat = Field(default=10.0, description="User damping of the bias baseline.")

    @model_validator(mode="after")
    def _binary_needs_cosine(self) -> Self:
        if self.values == "binary" and self.similarity != "cosine":
            raise ValueError(f"{self.similarity} centres ratings and is constant on binary data: use values='rating'")
        return self


class NeighbourhoodRecommender(Recommender):
    """Base of item-item and user-user kNN; subclasses say which side the neighbours are on."""

    config: KNNConfig  # each subclass names its own
    predicts_ratings = True

    # --- what a family decides ---------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def _entities(user_items: sp.csr_matrix) -> sp.csr_matrix:
        """The matrix whose rows are compared: user x item for user-user, its transpose for item-item."""

    @abstractmethod
    def _ranking(self, users: np.ndarray) -> sp.csr_matrix:
        """Sparse ranking scores of `users` against every item."""

    @abstractmethod
    def _pair_rows(self, users: np.ndarray, items: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """Per pair: the target's similarity row, the residual row it is matched with, the mean offset."""

    @abstractmethod
    def _mean_offsets(self) -> np.ndarray:
        """Per rating entry of the user x item matrix: the entity mean it is centred on."""

    # --- training -----------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        self._biases = fit_biases(train, config.baseline_item_damping, config.baseline_user_damping, BASELINE_PASSES)
        self._rating_range = (float(train.rating.min()), float(train.rating.max()))
        self._ratings = train.tocsr("rating")
        self._similarity = top_k_similarity(
            self._entities(self._values()),
            config.similarity,
            config.n_neighbours,
            config.shrinkage,
            config.min_similarity,
        )
        self._prepare()

    def _values(self, ratings: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """Ratings (the training ones by default) or their binary pattern, as the config says."""
        values = (self._ratings if ratings is None else ratings).copy()
        if self.config.values == "binary":
            values.data = np.ones_like(values.data)
        return values

    def _prepare(self) -> None:
        """Derived arrays (ranking data, residuals, means) from the saved ones."""
        ratings = self._ratings
        self._ranking_values = self._values()
        self._ranking_similarity = top_k_per_row(self._similarity, self.config.ranking_neighbours)
        counts = ratings.getnnz(axis=1), ratings.getnnz(axis=0)
        sums = np.asarray(ratings.sum(axis=1)).ravel(), np.asarray(ratings.sum(axis=0)).ravel()
        self._user_means, self._item_means = (
            np.divide(s, c, out=np.zeros(c.size), where=c > 0) for s, c in zip(sums, counts, strict=True)
        )
        coo = ratings.tocoo()
        if self.config.prediction == "baseline":
            offsets = self._biases.pairs(coo.row, coo.col)
        else:
            offsets = self._mean_offsets()
        residuals = ratings.copy()
        residuals.data = (ratings.data - offsets).astype(np.float32)
        self._residuals = residuals

    # --- scoring ------------------------------------------------------------------------------
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Ranking scores: similarity-weighted sums over the user's items or the neighbours' items."""
        users = self._check_users(user_indices)
        return self._ranking(users).toarray().astype(np.float32)

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Ranking scores of each history as of a training user with those ratings: exact."""
        return self._ranking_history(self._values(history.rows.tocsr("rating")), history.users)

    @abstractmethod
    def _ranking_history(self, values: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        """Dense ranking scores of history rows (`_values` of their ratings); `users` their own index or -1."""

    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Neighbourhood rating predictions (module docstring), clipped to the training rating range."""
        users = self._check_users(user_indices)
        items = np.asarray(item_indices, dtype=np.int64)
        if items.shape != users.shape:
            raise ValueError(f"user and item indices differ in shape: {users.shape} vs {items.shape}")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"{self.family}: item indices must lie in [0, {self.n_items}); map raw ids first")
        predicted = np.empty(users.size, dtype=np.float32)
        for start in range(0, users.size, PAIR_CHUNK):
            chunk = slice(start, start + PAIR_CHUNK)
            predicted[chunk] = self._predict_chunk(users[chunk], items[chunk])
        return np.clip(predicted, *self._rating_range)

    def _predict_chunk(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        baseline = self._biases.pairs(users, items)
        similar, residuals, mean_offset = self._pair_rows(users, items)
        observed = residuals.copy()
        observed.data = np.ones_like(observed.data)
        weights = top_k_per_row(similar.multiply(observed).tocsr(), self.config.prediction_neighbours)
        numerator = np.asarray(weights.multiply(residuals).sum(axis=1)).ravel()
        total = np.asarray(weights.sum(axis=1)).ravel()
        enough = (weights.getnnz(axis=1) >= self.config.min_neighbours) & (total > 0)
        offset = baseline if self.config.prediction == "baseline" else mean_offset
        average = np.divide(numerator, total, out=np.zeros_like(numerator), where=total > 0)
        return np.where(enough, offset + average, baseline)

    def fallback_rating(self) -> float:
        return self.biases.global_mean

    @property
    def biases(self) -> Biases:
        """The bias baseline predictions fall back to."""
        return self._require(getattr(self, "_biases", None))

    @property
    def similarity(self) -> sp.csr_matrix:
        """The kept neighbour similarities, one row per entity (item or user)."""
        return self._require(getattr(self, "_similarity", None))

    # --- persistence --------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        ratings, similarity = self._ratings, self.similarity
        return {
            "ratings_data": ratings.data,
            "ratings_indices": ratings.indices,
            "ratings_indptr": ratings.indptr,
            "ratings_shape": np.asarray(ratings.shape),
            "similarity_data": similarity.data,
            "similarity_indices": similarity.indices,
            "similarity_indptr": similarity.indptr,
            "global_mean": np.asarray(self._biases.global_mean),
            "user_bias": self._biases.user,
            "item_bias": self._biases.item,
            "rating_range": np.asarray(self._rating_range),
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        shape = tuple(int(v) for v in state["ratings_shape"])
        self._ratings = sp.csr_matrix(
            (state["ratings_data"], state["ratings_indices"], state["ratings_indptr"]), shape=shape
        )
        n_entities = state["similarity_indptr"].size - 1
        self._similarity = sp.csr_matrix(
            (state["similarity_data"], state["similarity_indices"], state["similarity_indptr"]),
            shape=(n_entities, n_entities),
        )
        self._biases = Biases(float(state["global_mean"]), state["user_bias"], state["item_bias"])
        low, high = state["rating_range"]
        self._rating_range = (float(low), float(high))
        self._prepare()
