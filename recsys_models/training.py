"""Pieces every torch family shares: the training fields of their configs (`TorchTrainingConfig`), seeded
generators, mini-batches, early stopping, the epoch loop, and the divergence checks that fail a family
whose training blew up (`TrainingDiverged`)."""

import copy
import math
import numbers
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from recsys_models.exceptions import TrainingDiverged
from recsys_models.progress import report_epoch
from recsys_models.warm_start import active_warm_start

DIVERGENCE_FACTOR = 3.0  # a validation error more than this many times a trivial baseline's is divergence


class TorchTrainingConfig(BaseModel):
    """The training fields every torch family's config has (biased_mf, mf, bpr_mf, the NCF and autoencoder
    families, the sequence families, two_tower, hybrid_features): how long `run_epochs` may run, the
    mini-batch size, the optimizer's step size, early stopping's patience, and whether to refit on train +
    valid afterwards. A family's config inherits them; where its default differs it restates that one
    field with `training_default`, which keeps the description given here. Fields only some families
    have (l2, weight decay, init_std, min_rating, ...) stay on the families' configs.

    Frozen and extra="forbid", like every family config: saved models hold their config's fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: PositiveInt = Field(default=40, description="Most epochs; early stopping usually ends sooner.")
    batch_size: PositiveInt = Field(
        default=1024, description="Training examples per mini-batch, in the family's unit (its config's docstring)."
    )
    learning_rate: PositiveFloat = Field(
        default=0.005, description="Optimizer step size (Adam-style unless the config's `optimizer` picks another)."
    )
    patience: PositiveInt = Field(default=5, description="Epochs without validation gain before stopping.")
    refit_on_full: bool = Field(
        default=True, description="After early stopping, retrain on train + valid for the best epoch count."
    )


def training_default(name: str, default: Any) -> Any:
    """The field `name` of `TorchTrainingConfig` with a family's own `default` and the base's description,
    for a family config that restates the field with its annotation:
    `epochs: PositiveInt = training_default("epochs", 100)`."""
    return Field(default=default, description=TorchTrainingConfig.model_fields[name].description)


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


def shuffled_batches(
    n_rows: int, batch_size: int, generator: torch.Generator, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """Row indices of one epoch: a seeded permutation of range(n_rows) cut into batches, on `device`.

    The permutation is drawn on the CPU `generator` (see `seeded_generator`), so a seed gives the
    same batches on every device. Index the training tensors with each batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.randperm(n_rows, generator=generator).to(device)
    for start in range(0, n_rows, batch_size):
        yield order[start : start + batch_size]


def run_epochs(
    family: str,
    module: torch.nn.Module,
    epochs: int,
    train_epoch: Callable[[int], dict[str, float]],
    validate: Callable[[], float] | None = None,
    stopper: EarlyStopping | None = None,
    metric: str = "valid_ndcg_at_10",
) -> tuple[list[dict[str, float]], int]:
    """The epoch loop every torch family shares; returns (history, best epoch).

    Each epoch calls `train_epoch(epoch)` with `module` in training mode (it returns the epoch's
    training figures, e.g. {"train_loss": ...}), then `validate()` in eval mode without gradients
    when given, and records the value under `metric`. A NaN or infinite figure in the record raises
    `TrainingDiverged` at once; otherwise the epoch is reported (`progress.report_epoch`) and fed to
    `stopper`. On return the module holds the best epoch's weights (when a stopper ran) and is in
    eval mode. Records also hold `epoch_seconds`, the wall time of the training part. Inside a
    `warm_start.starting_from` block the module first takes the earlier fit's parameters and runs
    at most the warm start's epochs.
    """
    if validate is not None and stopper is None:
        raise ValueError("validate needs a stopper to select the best epoch")
    warm = active_warm_start()
    if warm is not None:
        warm.load_into(module)
        epochs = min(epochs, warm.max_epochs)
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        module.train()
        started = time.perf_counter()
        record: dict[str, float] = {"epoch": epoch, **train_epoch(epoch)}
        record["epoch_seconds"] = time.perf_counter() - started
        if validate is not None:
            module.eval()
            with torch.no_grad():
                record[metric] = float(validate())
        check_finite(family, record, f"at epoch {epoch}")
        stop = validate is not None and stopper is not None and stopper.update(epoch, record[metric], module)
        history.append(record)
        report_epoch(family, epoch, epochs, record)
        if stop:
            break
    best_epoch = len(history)
    if stopper is not None and validate is not None:
        stopper.restore_best(module)
        best_epoch = stopper.best_epoch
    module.eval()
    return history, best_epoch


def refit_record(record: dict[str, float]) -> dict[str, float]:
    """A refit epoch's history record, its figures prefixed `refit_` to keep them apart from the first run's."""
    return {key if key == "epoch" else f"refit_{key}": value for key, value in record.items()}


def figure_text(value: float) -> str:
    """A figure as divergence messages print it: NaN, inf, -inf, else three significant digits."""
    return "NaN" if math.isnan(value) else f"{value:.3g}"


def check_finite(family: str, figures: dict[str, float], when: str) -> None:
    """Raise `TrainingDiverged` naming the first NaN or infinite figure, e.g.
    "biased_mf diverged: train_loss is inf at epoch 3" (`when`: "at epoch 3")."""
    for name, value in figures.items():
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            raise TrainingDiverged(f"{family} diverged: {name} is {figure_text(value)} {when}")


def check_history(family: str, history: list[dict[str, float]]) -> None:
    """`check_finite` on every record of a fitted model's history (families without `run_epochs` too)."""
    for position, record in enumerate(history, start=1):
        check_finite(family, record, f"at epoch {record.get('epoch', position)}")


def check_against_baseline(
    family: str, metric: str, value: float, baseline: float, baseline_name: str, factor: float = DIVERGENCE_FACTOR
) -> None:
    """Raise `TrainingDiverged` when an error metric (lower is better) is NaN or infinite, or more than
    `factor` times a trivial baseline's on the same rows; a zero baseline (nothing to predict) bounds nothing."""
    if not math.isfinite(value):
        raise TrainingDiverged(f"{family} diverged: validation {metric} is {figure_text(value)}")
    if baseline > 0 and value > factor * baseline:
        raise TrainingDiverged(
            f"{family} diverged: validation {metric} {figure_text(value)} is more than {factor:g}x "
            f"the {baseline_name} baseline's {figure_text(baseline)}"
        )
