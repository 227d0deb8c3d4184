"""Two-tower retrieval (Yi et al., 2019) with an ANN index. The two-stage re-ranking family, a composite,
lives in `recsys_models.two_tower.rerank` (not imported here: composites sit above the leaf families)."""

from recsys_models.two_tower.ann import AnnConfig, VectorIndex, recall_at_k
from recsys_models.two_tower.model import TwoTower, TwoTowerConfig

__all__ = [
    "AnnConfig",
    "TwoTower",
    "TwoTowerConfig",
    "VectorIndex",
    "recall_at_k",
]
