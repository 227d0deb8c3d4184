"""Pieces every torch family shares: seeded generators, thread-safe device choice, early stopping."""

import copy
from dataclasses import dataclass, field

import torch


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for shuffling and initialisation; no global seeding."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@dataclass
class EarlyStopping:
    """Tracks a validation metric, keeps the best weights, and says when to stop.

    `lower_is_better` for losses and RMSE; False for NDCG and other gains.
    """

    patience: int
    lower_is_better: bool = True
    best_value: float = float("nan")
    best_epoch: int = 0
    _best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    _epochs_without_gain: int = 0

    def update(self, epoch: int, value: float, module: torch.nn.Module) -> bool:
        """Record `value` for `epoch` (1-based); return True when training should stop."""
        if value != value:  # NaN: a diverged model must not be kept silently
            raise FloatingPointError(f"validation metric became NaN at epoch {epoch}")
        improved = self.best_epoch == 0 or (
            value < self.best_value if self.lower_is_better else value > self.best_value
        )
        if improved:
            self.best_value, self.best_epoch = value, epoch
            self._best_state = copy.deepcopy(module.state_dict())
            self._epochs_without_gain = 0
        else:
            self._epochs_without_gain += 1
        return self._epochs_without_gain >= self.patience

    def restore_best(self, module: torch.nn.Module) -> None:
        """Load the weights of the best epoch into `module`."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)
