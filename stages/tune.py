"""A search trial's objective: fit a configuration on the split's `train` part, measure it on `valid`.

Only `train.parquet` and `valid.parquet` (and the item table, for families that use features) are
read: the test part is never seen by a search. Families that select epochs on `valid` early-stop on
it as in the train stage, but without the refit on train + valid, so that `valid` stays held out
from the weights being measured, and are judged by their kept epoch's figure (`kept_epoch_figure`);
the others fit on `train` alone and are measured after the fit.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recsys_models.base import Recommender
from recsys_models.exceptions import TrainingDiverged
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class
from recsys_models.training import check_history
from recsys_models.validation_metrics import fitted_ndcg, fitted_rmse
from stages.train import load_item_features, load_training_data, split_feedback

Objective = Literal["valid_ndcg_at_10", "valid_rmse"]


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured: the objective's value on `valid`, and what its fit cost; for a trial
    pruned during its fit, the last epoch's validation value and the epoch it stopped at."""

    value: float
    fit_seconds: float
    epochs: int
    pruned: bool = False


def objective_of(model_class: type[Recommender]) -> Objective:
    """RMSE for the families that learn only to predict ratings, full-ranking NDCG@10 for every other."""
    return "valid_rmse" if model_class.needs_ratings else "valid_ndcg_at_10"


def held_out(model_class: type[Recommender], config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the refit on train + valid where the family has one."""
    return config | {"refit_on_full": False} if "refit_on_full" in model_class.config_type.model_fields else config


def kept_epoch_figure(history: list[dict[str, float]], objective: Objective) -> float | None:
    """The validation figure of the epoch whose weights the family kept (its best), or None when its
    epochs record none. This, not a measurement of the fitted model, is the objective of the families
    that early-stop on `valid`: after fitting, the sequential, autoencoder and two-tower families
    score each user from their train + valid history, so `valid` would be judged on a state that
    already holds it (SASRec scored 0.91 NDCG that way, 0.02 per epoch)."""
    figures = [record[objective] for record in history if objective in record]
    if not figures:
        return None
    return min(figures) if objective == "valid_rmse" else max(figures)


def fitted_figure(
    model: Recommender, objective: Objective, train: Interactions, valid: Interactions, exclude_seen: bool
) -> float:
    """`objective` measured on the fitted model (families that do not validate per epoch fit on train alone)."""
    if objective == "valid_rmse":
        return fitted_rmse(model, valid)
    return fitted_ndcg(model, train, valid, exclude_seen, max_users=valid.n_users)


def validation_objective(
    split_dir: Path, family: str, config: dict[str, Any], seed: int = 42, items_dir: Path | None = None
) -> TrialResult:
    """Fit `family` with `config` on `split_dir`'s train part and measure `objective_of` it on its valid part.

    Raises `TrainingDiverged` when the fit or its figure is NaN or infinite."""
    model_class = family_class(family)
    model_config = model_class.config_type(**held_out(model_class, config))
    train, valid = load_training_data(split_dir)
    features = load_item_features(items_dir, train, valid) if model_class.uses_item_features else None
    started = time.perf_counter()
    model = model_class(model_config, TrainingOptions(seed=seed))
    model.fit(train, valid if model_class.uses_validation else None, features)
    fit_seconds = time.perf_counter() - started
    check_history(family, model.history)
    value = kept_epoch_figure(model.history, objective_of(model_class))
    if value is None:
        value = fitted_figure(model, objective_of(model_class), train, valid, split_feedback(split_dir).exclude_seen)
    if not math.isfinite(value):
        raise TrainingDiverged(f"{family} diverged: {objective_of(model_class)} is {value}")
    return TrialResult(value=value, fit_seconds=round(fit_seconds, 3), epochs=len(model.history))
