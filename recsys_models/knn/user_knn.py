"""User-user kNN (Resnick et al., CSCW 1994; Herlocker et al., SIGIR 1999).

Similarities between users (rows of the user x item matrix) are kept for the `n_neighbours` most
similar users of each user. Ranking score of item j for user u: the sum over the `ranking_neighbours`
nearest users v of u of s(u, v) * x_vj, x the ratings or ones (`values`). Rating prediction:
`knn.neighbourhood`, over the nearest neighbours of u who rated j.

Defaults from a search on the validation slices of benchmarks/protocol_quality.py (`--validation`,
never test), P4 mostly and P2, ml-latest-small (mls) and ml-100k:

1. similarity x values in {cosine/binary, cosine/rating, pearson/rating, adjusted_cosine/rating} x
   n_neighbours in {20, 50, 100, 200, 500} x shrinkage in {0, 10, 50} (cosine) or {10, 50, 100}.
   Ranking wants few neighbours (NDCG@10 P4 mls / ml-100k, cosine/rating, shrinkage 10: 0.115 / 0.164
   at 20, 0.108 / 0.153 at 200), rating prediction many (RMSE P4, unshrunk: 0.889 / 0.963 at 500,
   0.939 / 1.038 at 20):
   hence `ranking_neighbours` apart from the kept `n_neighbours`.
2. n_neighbours 500 (cosine/rating at shrinkage 10 and 50, Pearson at 50) and 1000 (cosine, 25) x
   ranking_neighbours in {10, 20, 30, 50, 100} x prediction in {baseline, mean_centred} x
   prediction_neighbours in {20, 40, 80} x min_neighbours in {1, 3}, then min_neighbours in
   {2, 3, 5, 10}. Ranking: 20-50 ranking neighbours within 0.003 NDCG of each other; Pearson ranks
   worse on ml-100k (0.144). Rating: the baseline offset and min_neighbours matter (mls P4 0.891 at
   1, 0.874 at 3, 0.869 at 10); Pearson 500 / 50 predicts ml-100k best (0.956) at no gain on mls.

Chosen: cosine on ratings, 500 kept neighbours, 30 for ranking, shrinkage 10, baseline offset, 40
prediction neighbours, at least 10. Validation: NDCG@10 P4 0.115 / 0.164 (popularity 0.082 / 0.079),
P2 0.147 / 0.138; RMSE P4 0.869 / 0.962 (bias 0.870 / 0.968), P2 0.820 / 0.996.
"""

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field, PositiveInt

from recsys_models.knn.neighbourhood import KNNConfig, NeighbourhoodRecommender
from recsys_models.knn.similarity import query_top_k_similarity, top_k_per_row
from recsys_models.tuning import Choice, FloatRange, IntRange, SearchSpace


class UserKNNConfig(KNNConfig):
    """Hyperparameters of user-user kNN: `KNNConfig`'s, with fewer ranking neighbours and more for a rating."""

    search_space: ClassVar[SearchSpace] = {
        "ranking_neighbours": IntRange(5, 300, log=True),
        "shrinkage": FloatRange(0.0, 100.0),
        "values": Choice(("rating", "binary")),
    }

    ranking_neighbours: PositiveInt = Field(
        default=30, description="Most similar kept neighbours of each user whose items ranking scores sum over."
    )
    min_neighbours: PositiveInt = Field(
        default=10, description="Fewer neighbours who rated the item than this: predict the bias baseline."
    )


class UserKNN(NeighbourhoodRecommender):
    """User-user neighbourhood model: ranks by neighbours' items, predicts user-based ratings."""

    family = "user_knn"
    config_type = UserKNNConfig
    config: UserKNNConfig

    @staticmethod
    def _entities(user_items: sp.csr_matrix) -> sp.csr_matrix:
        return user_items

    def _prepare(self) -> None:
        super()._prepare()
        self._residuals_by_item = self._residuals.T.tocsr()

    def _ranking(self, users: np.ndarray) -> sp.csr_matrix:
        return self._ranking_similarity[users] @ self._ranking_values

    def _ranking_history(self, values: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        """The history's nearest training users (by the fitted measure and shrinkage; a known user
        is not their own neighbour), then their items as for a training user."""
        config = self.config
        kept = query_top_k_similarity(
            values,
            self._values(),
            config.similarity,
            config.n_neighbours,
            config.shrinkage,
            config.min_similarity,
            users,
        )
        neighbours = top_k_per_row(kept, config.ranking_neighbours)
        return (neighbours @ self._ranking_values).toarray().astype(np.float32)

    def _pair_rows(self, users: np.ndarray, items: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        return self._similarity[users], self._residuals_by_item[items], self._user_means[users]

    def _mean_offsets(self) -> np.ndarray:
        return self._user_means[np.repeat(np.arange(self._ratings.shape[0]), np.diff(self._ratings.indptr))]
