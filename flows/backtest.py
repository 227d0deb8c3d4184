"""The backtest flow: ingest -> validate -> rolling split -> (train -> evaluate)[window x family] -> report.

For each window the chosen families train on everything before its cut-off (with the validation
tail cut from that, as in retrain) and are scored on the window after it. The metric-over-time
table (Parquet + CSV, and a PNG when matplotlib is installed) lands in the run's `backtest/`
folder and in MLflow (experiment `recsys-backtest`): the table as artefacts of the parent run,
each family's metrics in a child run with step = window index. A window that evaluates fewer than
`MIN_EVAL_USERS` (`tasks/backtest_summary.py`) users is logged as a WARNING and noted in the summary (`notes`).
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from data_contracts import DriftBounds
from flows.config import BacktestConfig
from flows.prepare import ingest_and_validate
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import describe_source
from stages.layout import RunDir
from stages.manifest import read_manifest
from stages.results import BacktestSummary, MlflowRun
from tasks.backtest_summary import build_backtest_summary, entry, warn_of_few_users
from tasks.backtest_tracking import log_backtest
from tasks.family_results import first_failure
from tasks.stage_store import local
from tasks.stage_tasks import (
    backtest_report_task,
    cached,
    evaluate_task,
    rolling_split_task,
    train_task,
)
from tasks.workspace import Workspace, link_stage, new_run_id


@flow(name="backtest", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))  # type: ignore[arg-type]  # prefect infers ThreadPoolTaskRunner[Never]
def backtest(config: BacktestConfig = BacktestConfig(), execution: Execution = Execution()) -> BacktestSummary:
    """Run the rolling protocol once; returns (and writes as summary.json) a `BacktestSummary`: where the
    metric-over-time table is.
    Stages reused from the cache show as links to the earlier run's folders, as in retrain."""
    logger = get_run_logger()
    source = describe_source(config.dataset)
    workspace = Workspace.from_env()
    run_id = new_run_id()
    run_dir = workspace.run_dir(run_id)
    logger.info("backtest %s in %s", run_id, run_dir)

    rolling_split, train, evaluate = (
        cached(stage_task, workspace.cache, execution.refresh_cache)
        for stage_task in (rolling_split_task, train_task, evaluate_task)
    )
    run = RunDir(run_dir)
    # the same contracts as retrain; no drift check against an earlier run: a backtest replays history
    validated_dir = ingest_and_validate(
        config.dataset,
        run,
        workspace,
        seed=config.seed,
        max_quarantine_share=config.max_quarantine_share,
        drift=DriftBounds(),
        reference=None,
        refresh=execution.refresh_cache,
    )
    window_dirs = rolling_split(
        validated_dir, run.split, config.n_windows, config.window_days, config.valid_fraction, source.feedback
    )
    if window_dirs:
        link_stage(window_dirs[0].parent, run.split)
    families, skipped = config.applicable_families(source)
    for family, reason in skipped.items():
        logger.info("skipping %s: %s", family, reason)
    threads = divide_threads(execution)
    logger.info("%d windows x %s, torch threads per task: %s", len(window_dirs), ", ".join(families), threads)

    entries: list[dict[str, Any]] = []
    jobs = {}
    for index, window_dir in enumerate(window_dirs):
        if read_manifest(window_dir)["counts"]["test_rows"] == 0:
            entries += [entry(index, family, window_dir, None, "empty window") for family in families]
            continue
        for family in families:
            trained = train.submit(
                window_dir,
                run.train(family, window_dir.name),
                family,
                config.family_configs.get(family),
                config.seed,
                validated_dir,
                threads,
            )
            evaluated = evaluate.submit(
                window_dir, trained, run.evaluate(family, window_dir.name), family, config.k, validated_dir
            )
            jobs[index, family] = (window_dir, trained, evaluated)
    for (index, family), (window_dir, trained, evaluated) in jobs.items():
        error = first_failure([trained, evaluated])
        if error is None:
            entries.append(entry(index, family, window_dir, local(evaluated.result()), "ok"))
        else:
            logger.error("window %d, family %s failed: %s", index, family, error)
            entries.append(entry(index, family, window_dir, None, f"failed: {error}"))

    notes = warn_of_few_users(entries, logger)
    report_dir = backtest_report_task(entries, run_dir / "backtest", config.k)
    config_json = config.model_dump(mode="json")
    params = {key: config_json[key] for key in ("dataset", "n_windows", "window_days", "valid_fraction", "seed", "k")}
    parent_run_id = log_backtest(
        workspace, run_id, params, config.selected_families(), run_dir, report_dir, entries, config.k
    )
    mlflow = MlflowRun(run_id=parent_run_id, tracking_uri=workspace.tracking_uri())
    summary = build_backtest_summary(run, run_id, config_json, families, entries, report_dir, notes, mlflow)
    summary.write(run.summary_file)
    return summary
