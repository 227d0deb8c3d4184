"""Neighbourhood collaborative filtering: item-item and user-user kNN over sparse top-k similarities."""

from recsys_models.knn.item_knn import ItemKNN, ItemKNNConfig
from recsys_models.knn.neighbourhood import KNNConfig
from recsys_models.knn.similarity import top_k_similarity
from recsys_models.knn.user_knn import UserKNN, UserKNNConfig

__all__ = ["ItemKNN", "ItemKNNConfig", "KNNConfig", "UserKNN", "UserKNNConfig", "top_k_similarity"]
