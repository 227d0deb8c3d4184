"""Plain matrix factorisation without biases: r(u, i) = p_u . q_i (Koren, Bell & Volinsky 2009, eq. 2).

The same trainer as biased MF (mini-batch Adam on squared error, L2 on the factors of a batch,
early stopping on validation RMSE, refit on train + valid); only the bias terms and the global
mean are left out of the prediction, which is the point of the family: a baseline that shows
what the biases of `biased_mf` are worth.

Defaults (`--validation` of benchmarks/protocol_quality.py on P4: the protocol re-applied to the
training part, test never seen; RMSE on that inner test, seed 42): grid learning_rate {0.002,
0.005, 0.01} x factor_l2 {0.03, 0.1, 0.3} x init_std {0.05, 0.3} at 64 factors, then 32/128
factors, factor_l2 0.15 and learning_rate 0.001. A large init_std (0.3) is worse everywhere.

    lr, factor_l2, init_std (factors)   RMSE ml-small  RMSE ml-100k
    0.002, 0.03, 0.05                       0.936          0.958
    0.005, 0.1, 0.05                        0.918          0.963
    0.002, 0.1, 0.05 (32)                   0.908          0.955
    0.002, 0.1, 0.05 (128)                  0.928          0.953
    0.001, 0.1, 0.05 (80 epochs)            0.907          0.953
    0.002, 0.1, 0.05                        0.909          0.956   <- default
    biased_mf defaults, for comparison      0.861          0.953
"""

from typing import ClassVar

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.biased_mf.model import BiasedMF
from recsys_models.biased_mf.network import BiasedMFNetwork
from recsys_models.training import TorchTrainingConfig, training_default
from recsys_models.tuning import FloatRange, IntRange, SearchSpace


class MFConfig(TorchTrainingConfig):
    """Hyperparameters of plain MF; defaults from the validation search in the module docstring.
    A mini-batch holds ratings (batch_size at least: see max_batches_per_epoch)."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(8, 256, log=True),
        "learning_rate": FloatRange(1e-4, 5e-2, log=True),
        "factor_l2": FloatRange(1e-3, 1.0, log=True),
    }

    n_factors: PositiveInt = Field(default=64, description="Latent dimensions.")
    max_batches_per_epoch: PositiveInt = Field(
        default=200,
        description="Most optimizer steps per epoch: larger data get larger batches, ceil(ratings / this).",
    )
    learning_rate: PositiveFloat = training_default("learning_rate", 0.002)
    factor_l2: NonNegativeFloat = Field(default=0.1, description="L2 weight on the factors of a batch.")
    init_std: PositiveFloat = Field(default=0.05, description="Standard deviation of the initial factors.")
    patience: PositiveInt = training_default("patience", 3)


class MF(BiasedMF):
    """Dot product of latent user and item factors, no biases; predicts ratings."""

    family = "mf"
    config_type = MFConfig
    config: MFConfig
    use_biases = False

    def _penalty(self, network: BiasedMFNetwork, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        factor_penalty, _ = network.penalty(users, items)
        return self.config.factor_l2 * factor_penalty
