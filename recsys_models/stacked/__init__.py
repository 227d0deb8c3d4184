"""Two-stage recommender: candidates from several families, re-ranked by a learned LambdaRank model."""

from recsys_models.stacked.config import DEFAULT_PARTS, RankerConfig, StackedConfig
from recsys_models.stacked.model import Stacked

__all__ = ["DEFAULT_PARTS", "RankerConfig", "Stacked", "StackedConfig"]
