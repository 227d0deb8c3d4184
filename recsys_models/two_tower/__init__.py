"""Two-tower retrieval (Yi et al., 2019) with an ANN index, and a two-stage re-ranking family."""

from recsys_models.two_tower.ann import AnnConfig, VectorIndex, recall_at_k
from recsys_models.two_tower.model import TwoTower, TwoTowerConfig
from recsys_models.two_tower.rerank import TwoTowerRerank, TwoTowerRerankConfig

__all__ = [
    "AnnConfig",
    "TwoTower",
    "TwoTowerConfig",
    "TwoTowerRerank",
    "TwoTowerRerankConfig",
    "VectorIndex",
    "recall_at_k",
]
