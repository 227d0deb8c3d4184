"""Item-item kNN (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

Similarities between items (columns of the user x item matrix) are kept for the `n_neighbours`
most similar items of each item. Ranking score of item j for user u: the sum over the items i of u
of x_ui * s(i, j), j among the `ranking_neighbours` nearest of i, x the ratings or ones (`values`).
Rating prediction: `knn.neighbourhood`, over the nearest neighbours of j that u rated.

Defaults from a search on the validation slices of benchmarks/protocol_quality.py (`--validation`,
never test), P4 mostly and P2, ml-latest-small (mls) and ml-100k:

1. similarity x values in {cosine/binary, cosine/rating, adjusted_cosine/rating, pearson/rating} x
   n_neighbours in {10, 20, 50, 100, 200, 500} x shrinkage in {0, 10, 50}. Cosine on ratings ranks
   best (NDCG@10 P4 mls / ml-100k: 0.117 / 0.165 at 500 neighbours and shrinkage 10, 0.104 / 0.174 at
   200 unshrunk; binary cosine 0.103 / 0.161; Pearson 0.105 / 0.132 and adjusted cosine 0.095 / 0.112
   at best, and nothing without shrinkage, where one shared rater makes a similarity of 1). Rating
   prediction wants many kept neighbours (the candidates among the user's items): RMSE P4 0.859 /
   0.959 at 500, 0.886 / 0.971 at 50.
2. cosine/rating with n_neighbours in {300, 500, 1000} x shrinkage in {5, 10, 20} (and Pearson at
   1000 / 100) x prediction in {baseline, mean_centred} x prediction_neighbours in {20, 40, 80} x
   min_neighbours in {1, 3}, then min_neighbours in {2, 3, 5, 10}. The baseline offset beats mean
   centring by 0.03-0.04 RMSE on mls; prediction_neighbours and min_neighbours move RMSE by < 0.005.
   Pearson 1000 / 100 had the best ml-100k RMSE (0.953) but worse mls RMSE (0.863) and ranking.

Chosen: cosine on ratings, 500 neighbours for both uses, shrinkage 10, baseline offset, 40 prediction
neighbours, at least 5. Validation: NDCG@10 P4 0.117 / 0.165 (popularity 0.082 / 0.079), P2 0.106 /
0.120; RMSE P4 0.856 / 0.959 (bias 0.870 / 0.968), P2 0.806 / 1.013.
"""

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recsys_models.knn.neighbourhood import KNNConfig, NeighbourhoodRecommender
from recsys_models.tuning import Choice, FloatRange, IntRange, SearchSpace


class ItemKNNConfig(KNNConfig):
    """Hyperparameters of item-item kNN (the shared defaults of `KNNConfig`)."""

    search_space: ClassVar[SearchSpace] = {
        "ranking_neighbours": IntRange(10, 500, log=True),
        "shrinkage": FloatRange(0.0, 100.0),
        "values": Choice(("rating", "binary")),
    }


class ItemKNN(NeighbourhoodRecommender):
    """Item-item neighbourhood model: ranks by summed item similarities, predicts item-based ratings."""

    family = "item_knn"
    config_type = ItemKNNConfig
    config: ItemKNNConfig

    @staticmethod
    def _entities(user_items: sp.csr_matrix) -> sp.csr_matrix:
        return user_items.T.tocsr()

    def _ranking(self, users: np.ndarray) -> sp.csr_matrix:
        return self._ranking_values[users] @ self._ranking_similarity

    def _ranking_history(self, values: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        """The history's values times the kept item similarities."""
        return (values @ self._ranking_similarity).toarray().astype(np.float32)

    def _pair_rows(self, users: np.ndarray, items: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        return self._similarity[items], self._residuals[users], self._item_means[items]

    def _mean_offsets(self) -> np.ndarray:
        return self._item_means[self._ratings.indices]
