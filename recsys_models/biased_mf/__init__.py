"""Biased matrix factorisation (Koren, Bell & Volinsky 2009) in PyTorch, and plain MF without biases."""

from recsys_models.biased_mf.mf import MF, MFConfig
from recsys_models.biased_mf.model import BiasedMF, BiasedMFConfig

__all__ = ["MF", "BiasedMF", "BiasedMFConfig", "MFConfig"]
