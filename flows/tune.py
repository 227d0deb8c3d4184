"""The tune flow: ingest -> validate -> split once, then a resumable hyperparameter search of one family
on the split's validation tail, then the best configuration judged once on the test part.

The search is Optuna's TPE sampler (seeded) in ask/tell form, one Prefect task per trial, as many at
once as `execution.workers`. The study lives in a journal file under workspace/tuning/, so a killed
search resumes and a rerun with more trials continues it: finished trials are never repeated, a
trial cut off by the kill is run again. The study's name carries a hash of the data (train and valid
parts), the base configuration and the space, so a change in any of them starts a new study. Trial 0
is the base configuration (the family's defaults unless `base_config` says otherwise), so a search
never ends worse than it.

Pruning (epoch-based families, `tasks.pruning`): a trial below the median of the earlier trials at the
same epoch that has stopped improving is stopped; it keeps its last figure and TPE learns from it.
"""

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
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from data_contracts import DriftBounds
from flows.config import TuneConfig
from flows.family_configs import write_family_config
from flows.prepare import prepare_split
from flows.retrain import RetrainConfig, split_settings
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import describe_source
from recsys_models.io import atomic_write_json
from recsys_models.registry import family_class, skip_reason
from recsys_models.tuning import SearchSpace, describe_space, search_space, starting_point, suggest
from stages.layout import EvalDir, RunDir
from stages.manifest import read_manifest
from stages.tune import objective_of
from tasks.pruning import STARTUP_TRIALS, PlateauMedianPruner
from tasks.stage_store import local
from tasks.stage_tasks import cached, evaluate_task, train_task
from tasks.tune_tasks import trial_task
from tasks.tune_tracking import log_search
from tasks.workspace import Workspace, file_lock, last_successful_validation, link_stage, new_run_id

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"  # study attribute: trials a killed search left running (they are run again)
MIN_IMPORTANCE_TRIALS = 5


@flow(name="tune", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))  # type: ignore[arg-type]  # prefect infers ThreadPoolTaskRunner[Never]
def tune(config: TuneConfig, execution: Execution = Execution()) -> dict[str, Any]:
    """Search `config.family`'s space on the validation tail; write the best configuration; return a summary."""
    logger = get_run_logger()
    model_class = family_class(config.family)
    space = search_space(config.family, model_class.config_type)
    base = model_class.config_type(**config.base_config)
    source = describe_source(config.dataset)
    reason = skip_reason(config.family, source.feedback, source.has_items)
    if reason is not None:
        raise ValueError(f"{config.family} does not apply to {source.name}: {reason}")
    workspace = Workspace.from_env()
    run_id = new_run_id()
    run_dir = workspace.root / "tuning" / "runs" / run_id
    run_like = RetrainConfig(protocol=config.protocol, train_fraction=config.train_fraction, seed=config.seed)
    settings = split_settings(run_like, source)
    run = RunDir(run_dir)
    validated_dir, split_dir = prepare_split(
        config.dataset, run, workspace, settings, seed=config.seed, max_quarantine_share=config.max_quarantine_share,
        drift=DriftBounds(), reference=last_successful_validation(workspace, source.name, before=run_id),
        refresh=execution.refresh_cache,
    )  # fmt: skip

    objective = objective_of(model_class)
    maximize = objective != "valid_rmse"
    journal = workspace.root / "tuning" / f"{file_name(source.name)}-{config.family}-{settings.protocol}.journal"
    name = study_name(config.family, split_dir, base, space, config.seed)
    threads = divide_threads(execution)

    def submit(trial: Trial, params: dict[str, Any]) -> PrefectFuture:
        trial_config = config.base_config | params
        return trial_task.submit(split_dir, config.family, trial_config, config.seed, trial.number, validated_dir,
                                 threads, trial=trial, objective=objective)  # fmt: skip

    with file_lock(journal.with_suffix(".lock")):  # one search of a study at a time: its RUNNING trials are stale
        study = open_study(journal, name, maximize, config.seed)
        resume(study, starting_point(base, space))
        ran = search(study, space, submit, config.trials, config.timeout, execution.workers)
    logger.info("study %s: %d trials run now, %d finished in all", name, len(ran), len(finished(study)))
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise RuntimeError(f"no trial of {name} finished: see the failed trials' errors in {journal}")
    best = study.best_trial
    best_config = config.base_config | best.params

    test_metrics = judge_on_test(config, best_config, workspace, run, split_dir, validated_dir, threads,
                                 execution.refresh_cache)  # fmt: skip
    out = Path(config.out) if config.out else workspace.root / "tuning" / f"{config.family}.yaml"
    write_family_config(out, config.family, best_config)
    summary = {
        "run_id": run_id, "run_dir": str(run_dir), "family": config.family, "source": config.dataset,
        "dataset": source.name, "protocol": settings.protocol, "study": name, "journal": str(journal), "objective": objective,
        "maximize": maximize, "space": describe_space(space), "base_config": config.base_config,
        "trials": [describe_trial(trial) for trial in finished(study)], "ran_now": ran,
        "base_value": base_value(study, starting_point(base, space)), "best": describe_trial(best), "best_config": best_config,
        "test_metrics": test_metrics, "out": str(out), "importances": importances(study, space, config.seed),
    }  # fmt: skip
    summary["mlflow"] = log_search(workspace, summary, run_dir)
    atomic_write_json(run.summary_file, summary)
    return summary


def judge_on_test(
    config: TuneConfig, best_config: dict[str, Any], workspace: Workspace, run: RunDir, split_dir: Path,
    validated_dir: Path, threads: int | None, refresh: bool,
) -> dict[str, Any]:  # fmt: skip
    """The test part, once: the best recipe trained as retrain trains it, then the evaluate stage's metrics."""
    train, evaluate = (cached(stage, workspace.cache, refresh) for stage in (train_task, evaluate_task))
    train_dir, eval_dir = run.train(config.family), run.evaluate(config.family)
    trained = link_stage(
        local(train(split_dir, train_dir, config.family, best_config, config.seed, validated_dir, threads)), train_dir
    )
    evaluated = link_stage(
        local(evaluate(split_dir, trained, eval_dir, config.family, config.k, validated_dir)), eval_dir
    )
    return EvalDir(evaluated).metrics()


def file_name(text: str) -> str:
    """`text` with every character a file name should not hold replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def study_name(family: str, split_dir: Path, base: BaseModel, space: SearchSpace, seed: int) -> str:
    """`<family>-<hash>`: the hash of what the trials' values depend on (train and valid content, base
    configuration, space, seed); the test part is not in it."""
    outputs = read_manifest(split_dir)["outputs"]
    identity = {
        "data": [outputs[f"{part}.parquet"]["sha256"] for part in ("train", "valid")],
        "base": base.model_dump(mode="json"), "space": describe_space(space), "seed": seed,
    }  # fmt: skip
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
    study: optuna.Study, space: SearchSpace, submit: Callable[[Trial, dict[str, Any]], PrefectFuture],
    trials: int, timeout: float | None, workers: int,
) -> list[int]:  # fmt: skip
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
        get_run_logger().info("trial %d: pruned after epoch %d at %.4f %s", trial.number, result.epochs,
                              result.value, trial.params)  # fmt: skip
        return
    study.tell(trial, result.value)
    get_run_logger().info("trial %d: %.4f %s", trial.number, result.value, trial.params)


def describe_trial(trial: FrozenTrial) -> dict[str, Any]:
    """A trial as the summary holds it."""
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "user_attrs": trial.user_attrs}  # fmt: skip


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
