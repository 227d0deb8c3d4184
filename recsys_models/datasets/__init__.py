"""Ingestion: MovieLens, any ratings file, or synthetic data, as a `RawDataset` before validation."""

from recsys_models.datasets.movielens import fetch_movielens, load_dataset
from recsys_models.datasets.synthetic import SyntheticConfig, generate_synthetic
from recsys_models.datasets.types import HALF_STARS, WHOLE_STARS, RatingScale, RawDataset

__all__ = [
    "HALF_STARS",
    "WHOLE_STARS",
    "RatingScale",
    "RawDataset",
    "SyntheticConfig",
    "fetch_movielens",
    "generate_synthetic",
    "load_dataset",
]
