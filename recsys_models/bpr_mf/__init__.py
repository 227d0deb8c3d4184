"""BPR matrix factorisation (Rendle et al., 2009) for implicit feedback, in PyTorch."""

from recsys_models.bpr_mf.model import BPRMF, BPRMFConfig

__all__ = ["BPRMF", "BPRMFConfig"]
