"""The backtest flow: ingest -> validate -> rolling split -> (train -> evaluate)[window x family] -> report.

For each window the chosen families train on everything before its cut-off (with the validation
tail cut from that, as in retrain) and are scored on the window after it. The metric-over-time
table (Parquet + CSV, and a PNG when matplotlib is installed) lands in the run's `backtest/`
folder and in MLflow (experiment `recsys-backtest`): the table as artefacts of the parent run,
each family's metrics in a child run with step = window index. A window that evaluates fewer than
`MIN_EVAL_USERS` users is logged as a WARNING and noted in the summary (`notes`).
"""

import logging
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from data_contracts import DriftBounds
from flows.config import BacktestConfig
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import describe_source
from recsys_models.io import atomic_write_json
from recsys_models.splitting import ROLLING
from stages.evaluate import BACKTEST_TABLE
from stages.layout import EvalDir, RunDir
from stages.manifest import MANIFEST, read_manifest
from tasks.stage_store import local, share
from tasks.stage_tasks import (
    backtest_report_task,
    cached,
    evaluate_task,
    ingest_task,
    rolling_split_task,
    train_task,
    validate_task,
)
from tasks.tracking import code_version, ensure_experiment, numeric_metrics, open_client, start_parent_run
from tasks.workspace import Workspace, data_dir_from_env, link_stage, new_run_id

EXPERIMENT = "recsys-backtest"
MLFLOW_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MIN_EVAL_USERS = 50  # fewer users per window give intervals too wide to read a trend from


@flow(name="backtest", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def backtest(config: BacktestConfig = BacktestConfig(), execution: Execution = Execution()) -> dict[str, Any]:
    """Run the rolling protocol once; returns (and writes as summary.json) the metric-over-time table's place.
    Stages reused from the cache show as links to the earlier run's folders, as in retrain."""
    logger = get_run_logger()
    source = describe_source(config.dataset)
    workspace = Workspace.from_env()
    run_id = new_run_id()
    run_dir = workspace.run_dir(run_id)
    logger.info("backtest %s in %s", run_id, run_dir)

    ingest, validate, rolling_split, train, evaluate = (
        cached(stage_task, workspace.cache, execution.refresh_cache)
        for stage_task in (ingest_task, validate_task, rolling_split_task, train_task, evaluate_task)
    )
    run = RunDir(run_dir)
    ingest_dir = share(link_stage(
        ingest(config.dataset, run.ingest, data_dir_from_env(), workspace.downloads, config.seed), run.ingest
    ))  # fmt: skip
    # the same contracts as retrain; no drift check against an earlier run: a backtest replays history
    validated_dir = share(link_stage(
        validate(ingest_dir, run.validate, config.max_quarantine_share, None, DriftBounds()), run.validate
    ))  # fmt: skip
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
            entries += [_entry(index, family, window_dir, None, "empty window") for family in families]
            continue
        for family in families:
            trained = train.submit(
                window_dir, run.train(family, window_dir.name), family,
                config.family_configs.get(family), config.seed, validated_dir, threads,
            )  # fmt: skip
            evaluated = evaluate.submit(
                window_dir, trained, run.evaluate(family, window_dir.name), family, config.k, validated_dir
            )
            jobs[index, family] = (window_dir, trained, evaluated)
    for (index, family), (window_dir, trained, evaluated) in jobs.items():
        evaluated.wait()
        failed_state = next((f.state for f in (trained, evaluated) if not f.state.is_completed()), None)
        if failed_state is None:
            entries.append(_entry(index, family, window_dir, local(evaluated.result()), "ok"))
        else:  # the first failing stage holds the real error, not "upstream failed"
            message = str(failed_state.message or failed_state.name)
            logger.error("window %d, family %s failed: %s", index, family, message)
            entries.append(_entry(index, family, window_dir, None, f"failed: {message}"))

    notes = warn_of_few_users(entries, logger)
    report_dir = backtest_report_task(entries, run_dir / "backtest", config.k)
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "config": config.model_dump(mode="json"),
        "windows": read_manifest(run.split)["counts"]["windows"],
        "table": str(report_dir / f"{BACKTEST_TABLE}.parquet"),
        "table_csv": str(report_dir / f"{BACKTEST_TABLE}.csv"),
        "plot": str(plot) if (plot := report_dir / f"{BACKTEST_TABLE}.png").exists() else None,
        "families": {  # families scored on at least one window, with how many
            family: {"windows_ok": ok}
            for family in families
            if (ok := sum(e["family"] == family and e["status"] == "ok" for e in entries))
        },
        "failed": {f"{e['window']}/{e['family']}": e["status"] for e in entries if e["status"].startswith("failed")},
        "notes": notes,
    }
    summary["mlflow"] = {
        "run_id": log_backtest(workspace, run_id, config, run_dir, report_dir, entries),
        "tracking_uri": workspace.tracking_uri(),
    }
    atomic_write_json(run.summary_file, summary)
    return summary


def warn_of_few_users(entries: list[dict[str, Any]], logger: Any, minimum: int = MIN_EVAL_USERS) -> list[str]:
    """Log a WARNING for each window whose scored families evaluated fewer than `minimum` users (the
    fewest any did); return those lines for the summary."""
    evaluated: dict[int, int] = {}
    for entry in entries:
        if entry["eval_dir"] is not None:
            users = EvalDir(entry["eval_dir"]).metrics()["n_eval_users"]
            evaluated[entry["window"]] = min(users, evaluated.get(entry["window"], users))
    notes = [
        f"window {window}: only {users} users evaluated (fewer than {minimum}): its metrics are noisy; "
        "longer windows (--window-days) give each more users"
        for window, users in sorted(evaluated.items())
        if users < minimum
    ]
    for note in notes:
        logger.warning(note)
    return notes


def log_backtest(
    workspace: Workspace,
    run_id: str,
    config: BacktestConfig,
    run_dir: Path,
    report_dir: Path,
    entries: list[dict[str, Any]],
) -> str:
    """Parent run with the table (and plot) as artefacts and the headline metrics per family with
    step = window index; one child run per family with every metric per window. Returns the parent id."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = open_client(workspace)
    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts / "backtest", EXPERIMENT)
    tags = {
        "data_hash": read_manifest(RunDir(run_dir).validate)["outputs"]["ratings.parquet"]["sha256"],
        "protocol": ROLLING,
        "code_version": code_version(),
        "dataset": config.dataset,
        "pipeline_run_id": run_id,
    }
    params = {key: config.model_dump(mode="json")[key] for key in ("dataset", "n_windows", "window_days",
                                                                   "valid_fraction", "seed", "k")}  # fmt: skip
    parent = start_parent_run(client, experiment_id, run_id, params, tags)
    for path in sorted(report_dir.glob(f"{BACKTEST_TABLE}.*")):
        client.log_artifact(parent, str(path), artifact_path="backtest")
    client.log_artifact(parent, str(RunDir(run_dir).split / MANIFEST), artifact_path="split")
    now = int(time.time() * 1000)
    headline = {"n_eval_users", "n_eval_rows", "rmse", "mae", f"ndcg_at_{config.k}", f"recall_at_{config.k}",
                f"hit_rate_at_{config.k}", f"coverage_at_{config.k}"}  # fmt: skip
    parent_metrics = []
    for family in config.selected_families():
        child = client.create_run(
            experiment_id, run_name=family, tags={"mlflow.parentRunId": parent, "family": family, **tags}
        ).info.run_id
        child_metrics = []
        for entry in entries:
            if entry["family"] != family or entry["eval_dir"] is None:
                continue
            values = numeric_metrics(EvalDir(entry["eval_dir"]).metrics())
            child_metrics += [Metric(key, value, now, entry["window"]) for key, value in values.items()]
            parent_metrics += [
                Metric(f"{family}.{key}", value, now, entry["window"])
                for key, value in values.items()
                if key in headline
            ]
        _log_metrics(client, child, child_metrics)
        client.set_terminated(child, "FINISHED")
    _log_metrics(client, parent, parent_metrics)
    client.set_terminated(parent, "FINISHED")
    return parent


def _log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])


def _entry(window: int, family: str, split_dir: Path, eval_dir: Path | None, status: str) -> dict[str, Any]:
    return {"window": window, "family": family, "split_dir": split_dir, "eval_dir": eval_dir, "status": status}
