"""A hyperparameter search as an Optuna study in a journal file: its name (a hash of what the trials'
values depend on), opening it with a seeded TPE sampler and the plateau-median pruner, resuming it
after a kill, the ask-run-tell loop and what the summary says of it (trials, base value, importances).

A killed search resumes: finished trials are never repeated, a trial cut off by the kill is marked
`INTERRUPTED` and run again with its parameters."""

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState
from prefect import get_run_logger
from prefect.futures import PrefectFuture, as_completed
from pydantic import BaseModel

from recsys_models.tuning import SearchSpace, describe_space, suggest
from stages.manifest import read_manifest
from tasks.pruning import STARTUP_TRIALS, PlateauMedianPruner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"  # study attribute: trials a killed search left running (they are run again)
MIN_IMPORTANCE_TRIALS = 5


def file_name(text: str) -> str:
    """`text` with every character a file name should not hold replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def study_name(family: str, split_dir: Path, base: BaseModel, space: SearchSpace, seed: int) -> str:
    """`<family>-<hash>`: the hash of what the trials' values depend on (train and valid content, base
    configuration, space, seed); the test part is not in it."""
    outputs = read_manifest(split_dir)["outputs"]
    identity = {
        "data": [outputs[f"{part}.parquet"]["sha256"] for part in ("train", "valid")],
        "base": base.model_dump(mode="json"),
        "space": describe_space(space),
        "seed": seed,
    }
    return f"{family}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]}"


def open_study(journal: Path, name: str, maximize: bool, seed: int) -> optuna.Study:
    """The study `name` in the journal file (created when new), with a seeded TPE sampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal.parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=name,
        storage=JournalStorage(JournalFileBackend(str(journal))),
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS),
        pruner=PlateauMedianPruner(),
        direction="maximize" if maximize else "minimize",
        load_if_exists=True,
    )


def resume(study: optuna.Study, base_params: dict[str, Any]) -> None:
    """A new study gets the base configuration as trial 0; trials a killed search left running are
    marked failed and `INTERRUPTED` (they count for nothing) and queued again with their parameters."""
    if not study.trials:
        study.enqueue_trial(base_params)
        return
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
    if stale:
        study.set_user_attr(INTERRUPTED, sorted(interrupted(study) | {trial.number for trial in stale}))


def interrupted(study: optuna.Study) -> set[int]:
    """Numbers of the trials a killed search cut off."""
    return set(study.user_attrs.get(INTERRUPTED, []))


def finished(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that count: completed, pruned or failed on their own (not cut off by a kill)."""
    cut_off = interrupted(study)
    return [trial for trial in study.get_trials(states=FINISHED) if trial.number not in cut_off]


def search(
    study: optuna.Study,
    space: SearchSpace,
    submit: Callable[[Trial, dict[str, Any]], PrefectFuture],
    trials: int,
    timeout: float | None,
    workers: int,
) -> list[int]:
    """Ask, run and tell until the study holds `trials` finished trials or `timeout` seconds passed
    (running trials then finish), at most `workers` at once; returns the numbers of the trials run."""
    deadline = time.monotonic() + timeout if timeout else math.inf
    running: dict[PrefectFuture, Trial] = {}
    done = len(finished(study))
    ran: list[int] = []
    while True:
        while len(running) < workers and done + len(running) < trials and time.monotonic() < deadline:
            trial = study.ask()
            running[submit(trial, suggest(trial, space))] = trial
        if not running:
            return ran
        future = next(as_completed(list(running)))
        trial = running.pop(future)
        tell(study, trial, future)
        ran.append(trial.number)
        done += 1


def tell(study: optuna.Study, trial: Trial, future: PrefectFuture) -> None:
    """Record a trial's value, or its failure with the error (a diverged or invalid configuration)."""
    try:
        result = future.result()
    except Exception as error:  # any error of a trial (diverged, invalid configuration) fails that trial only
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        get_run_logger().warning("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
        return
    trial.set_user_attr("fit_seconds", result.fit_seconds)
    trial.set_user_attr("epochs", result.epochs)
    if result.pruned:
        study.tell(trial, state=TrialState.PRUNED)  # Optuna keeps its last reported figure
        get_run_logger().info(
            "trial %d: pruned after epoch %d at %.4f %s", trial.number, result.epochs, result.value, trial.params
        )
        return
    study.tell(trial, result.value)
    get_run_logger().info("trial %d: %.4f %s", trial.number, result.value, trial.params)


def describe_trial(trial: FrozenTrial) -> dict[str, Any]:
    """A trial as the summary holds it."""
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "user_attrs": trial.user_attrs,
    }


def base_value(study: optuna.Study, base_params: dict[str, Any]) -> float | None:
    """The base configuration's value (trial 0's, or its rerun's after a kill): what the search has to beat."""
    runs = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((trial.value for trial in runs if trial.params == base_params), None)


def importances(study: optuna.Study, space: SearchSpace, seed: int) -> dict[str, float] | None:
    """fANOVA importance of each parameter; None with one parameter or fewer than MIN_IMPORTANCE_TRIALS completed."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(space) < 2 or len(completed) < MIN_IMPORTANCE_TRIALS:
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def describe_search(
    study: optuna.Study, space: SearchSpace, base_params: dict[str, Any], seed: int, ran: list[int]
) -> dict[str, Any]:
    """What the summary says of a search: its space, every finished trial, those run now, the base
    configuration's value, the best trial and the parameters' importances."""
    return {
        "space": describe_space(space),
        "trials": [describe_trial(trial) for trial in finished(study)],
        "ran_now": ran,
        "base_value": base_value(study, base_params),
        "best": describe_trial(study.best_trial),
        "importances": importances(study, space, seed),
    }
