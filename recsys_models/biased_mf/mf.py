"""Plain matrix factorisation without biases: r(u, i) = p_u . q_i (Koren, Bell & Volinsky 2009, eq. 2).

The same trainer as biased MF (mini-batch Adam on squared error, L2 on the factors of a batch,
early stopping on validation RMSE, refit on train + valid); only the bias terms and the global
mean are left out of the prediction, which is the point of the family: a baseline that shows
what the biases of `biased_mf` are worth.

Defaults: TUNING
"""

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.biased_mf.model import BiasedMF
from recsys_models.biased_mf.network import BiasedMFNetwork


class MFConfig(BaseModel):
    """Hyperparameters of plain MF; defaults from the validation search in the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_factors: PositiveInt = Field(default=64, description="Latent dimensions.")
    epochs: PositiveInt = Field(default=40, description="Most epochs; early stopping usually ends sooner.")
    batch_size: PositiveInt = Field(default=1024, description="Ratings per mini-batch.")
    learning_rate: PositiveFloat = Field(default=0.005, description="Adam step size.")
    factor_l2: NonNegativeFloat = Field(default=0.1, description="L2 weight on the factors of a batch.")
    init_std: PositiveFloat = Field(default=0.05, description="Standard deviation of the initial factors.")
    patience: PositiveInt = Field(default=3, description="Epochs without validation gain before stopping.")
    refit_on_full: bool = Field(
        default=True, description="After early stopping, retrain on train + valid for the best epoch count."
    )


class MF(BiasedMF):
    """Dot product of latent user and item factors, no biases; predicts ratings."""

    family = "mf"
    config_type = MFConfig
    use_biases = False

    def _penalty(self, network: BiasedMFNetwork, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        factor_penalty, _ = network.penalty(users, items)
        return self.config.factor_l2 * factor_penalty
