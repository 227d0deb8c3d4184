"""Neural collaborative filtering (He et al., 2017): `gmf`, `mlp` and `neumf`, one network and one trainer.

Defaults (validation search: `benchmarks/protocol_quality.py --validation` semantics, the P4
protocol re-applied to the training part of ml-latest-small, test never seen; NDCG@10 on that
inner test over 593 users, seed 42, one torch thread; 95% bootstrap intervals about +-0.011, so
every row below lies within noise of the others). Shared training settings were searched on GMF
(32 factors, batch 2048, 4 uniform negatives):

    lr, l2, patience, sampling             GMF NDCG@10   epochs (best / run)
    0.002, 0, 4, uniform                    0.088          2 / 6
    0.005, 1e-4, 4, uniform                 0.091          9 / 13
    0.005, 1e-3, 4, uniform                 0.084          2 / 6
    0.005, 1e-2, 4, uniform                 0.076          2 / 6
    0.005, 1e-3, 4, popularity 0.5          0.087          2 / 6
    0.005, 1e-4, 8, popularity 0.5          0.086          2 / 10
    0.005, 1e-4, 8, uniform                 0.091          9 / 17   <- default (all three families)
    0.001, 1e-4, 8, uniform                 0.092         30 / 38   (4x the fit time)

NeuMF (32 GMF factors, tower 64-32-16-8): 0.087 with lr 0.002, l2 0, patience 4; 0.079 with
the default settings; 0.086 with the default settings and `pretrain` (GMF and MLP trained first,
fused with alpha 0.5, fine-tuned at lr 5e-4), at twice the fit time, so `pretrain` stays off by
default. Popularity scores 0.081 and BPR-MF 0.097 on this inner split (bpr_mf's docstring).
"""

from recsys_models.ncf.model import GMF, MLP, GMFConfig, MLPConfig, NCFRecommender, NeuMF, NeuMFConfig

__all__ = ["GMF", "MLP", "GMFConfig", "MLPConfig", "NCFRecommender", "NeuMF", "NeuMFConfig"]
