"""Hybrids of collaborative and content-based filtering: weighted, switching, feature-augmented. The
blending hybrids, composites, live in `recsys_models.hybrid.weighted` and `.switching` (not imported
here: composites sit above the leaf families)."""

from recsys_models.hybrid.feature_mf import HybridFeatures, HybridFeaturesConfig

__all__ = [
    "HybridFeatures",
    "HybridFeaturesConfig",
]
