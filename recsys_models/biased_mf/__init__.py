"""Biased matrix factorisation (Koren, Bell & Volinsky 2009) in PyTorch."""

from recsys_models.biased_mf.model import BiasedMF, BiasedMFConfig

__all__ = ["BiasedMF", "BiasedMFConfig"]
