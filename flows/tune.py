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

from pathlib import Path
from typing import Any

from optuna.trial import Trial, TrialState
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from data_contracts import DriftBounds
from flows.config import TuneConfig
from flows.family_configs import write_family_config
from flows.prepare import prepare_split
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import describe_source
from recsys_models.io import atomic_write_json
from recsys_models.registry import family_class, skip_reason
from recsys_models.tuning import search_space, starting_point
from stages.layout import RunDir
from stages.split import split_settings
from stages.tune import objective_of
from tasks.tune_study import describe_search, file_name, finished, open_study, resume, search, study_name
from tasks.tune_tasks import judge_on_test, trial_task
from tasks.tune_tracking import log_search
from tasks.workspace import Workspace, file_lock, last_successful_validation, new_run_id


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
    settings = split_settings(source, config.protocol, train_fraction=config.train_fraction, seed=config.seed)
    run = RunDir(run_dir)
    validated_dir, split_dir = prepare_split(
        config.dataset,
        run,
        workspace,
        settings,
        seed=config.seed,
        max_quarantine_share=config.max_quarantine_share,
        drift=DriftBounds(),
        reference=last_successful_validation(workspace, source.name, before=run_id),
        refresh=execution.refresh_cache,
    )

    objective = objective_of(model_class)
    maximize = objective != "valid_rmse"
    journal = workspace.root / "tuning" / f"{file_name(source.name)}-{config.family}-{settings.protocol}.journal"
    name = study_name(config.family, split_dir, base, space, config.seed)
    threads = divide_threads(execution)

    def submit(trial: Trial, params: dict[str, Any]) -> PrefectFuture:
        trial_config = config.base_config | params
        return trial_task.submit(
            split_dir,
            config.family,
            trial_config,
            config.seed,
            trial.number,
            validated_dir,
            threads,
            trial=trial,
            objective=objective,
        )

    with file_lock(journal.with_suffix(".lock")):  # one search of a study at a time: its RUNNING trials are stale
        study = open_study(journal, name, maximize, config.seed)
        resume(study, starting_point(base, space))
        ran = search(study, space, submit, config.trials, config.timeout, execution.workers)
    logger.info("study %s: %d trials run now, %d finished in all", name, len(ran), len(finished(study)))
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise RuntimeError(f"no trial of {name} finished: see the failed trials' errors in {journal}")
    best_config = config.base_config | study.best_trial.params

    test_metrics = judge_on_test(
        config.family,
        best_config,
        config.seed,
        config.k,
        workspace,
        run,
        split_dir,
        validated_dir,
        threads,
        execution.refresh_cache,
    )
    out = Path(config.out) if config.out else workspace.root / "tuning" / f"{config.family}.yaml"
    write_family_config(out, config.family, best_config)
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "family": config.family,
        "source": config.dataset,
        "dataset": source.name,
        "protocol": settings.protocol,
        "study": name,
        "journal": str(journal),
        "objective": objective,
        "maximize": maximize,
        "base_config": config.base_config,
        "best_config": best_config,
        "test_metrics": test_metrics,
        "out": str(out),
        **describe_search(study, space, starting_point(base, space), config.seed, ran),
    }
    summary["mlflow"] = log_search(workspace, summary, run_dir)
    atomic_write_json(run.summary_file, summary)
    return summary
