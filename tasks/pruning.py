"""Pruning of a search's trials: each epoch's validation figure goes to the trial (`pruning_listener`),
and `PlateauMedianPruner` stops a trial that is below the median of the earlier trials at the same
epoch *and* has not improved on its own best for `plateau` epochs. The median rule alone would stop
slow starters (a small learning rate) that end best; the plateau rule alone is the family's own
early stopping."""

import optuna
from optuna.pruners import BasePruner, MedianPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from recsys_models.progress import EpochListener
from stages.tune import Objective

STARTUP_TRIALS = 4  # finished trials before any trial can be pruned
WARMUP_EPOCHS = 3  # the first epoch after which a trial can be pruned
PLATEAU_EPOCHS = 2  # epochs without improvement before a below-median trial is pruned


class TrialPruned(Exception):
    """A trial stopped by the pruner after `epoch`, its validation figure then `value`."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned after epoch {epoch}")
        self.epoch, self.value = epoch, value


class PlateauMedianPruner(BasePruner):
    """Prune when Optuna's median rule does and the trial's last `plateau` epochs brought no new best."""

    def __init__(
        self, startup_trials: int = STARTUP_TRIALS, warmup_epochs: int = WARMUP_EPOCHS, plateau: int = PLATEAU_EPOCHS
    ) -> None:
        self._median = MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
        self._plateau = plateau

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        values = [trial.intermediate_values[epoch] for epoch in sorted(trial.intermediate_values)]
        if len(values) <= self._plateau:
            return False
        best = max if study.direction == StudyDirection.MAXIMIZE else min
        earlier, recent = values[: -self._plateau], values[-self._plateau :]
        plateaued = best(earlier + recent) == best(earlier)
        return plateaued and self._median.prune(study, trial)


def pruning_listener(trial: optuna.Trial, objective: Objective) -> EpochListener:
    """Report each epoch's `objective` figure to `trial`; raise `TrialPruned` when the study's pruner
    says so. Epochs without the figure (families that validate nothing per epoch) report nothing."""

    def listener(family: str, epoch: int, metrics: dict[str, float]) -> None:
        if objective not in metrics:
            return
        value = float(metrics[objective])
        trial.report(value, epoch)
        if trial.should_prune():
            raise TrialPruned(epoch, value)

    return listener
