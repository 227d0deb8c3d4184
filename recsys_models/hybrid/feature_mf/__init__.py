"""Feature-augmented factorisation: an item is its id embedding plus its features' embeddings."""

from recsys_models.hybrid.feature_mf.model import HybridFeatures, HybridFeaturesConfig

__all__ = ["HybridFeatures", "HybridFeaturesConfig"]
