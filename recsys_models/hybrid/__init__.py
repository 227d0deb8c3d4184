"""Hybrids of collaborative and content-based filtering: weighted, switching, feature-augmented."""

from recsys_models.hybrid.feature_mf import HybridFeatures, HybridFeaturesConfig
from recsys_models.hybrid.switching import HybridSwitching, HybridSwitchingConfig
from recsys_models.hybrid.weighted import HybridWeighted, HybridWeightedConfig

__all__ = [
    "HybridFeatures",
    "HybridFeaturesConfig",
    "HybridSwitching",
    "HybridSwitchingConfig",
    "HybridWeighted",
    "HybridWeightedConfig",
]
