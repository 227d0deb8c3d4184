"""The nightly retrain flow: ingest -> validate -> split -> train[family] x N -> evaluate -> refit on
every row to serve -> register, gate and promote -> summary and report."""

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import RetrainConfig
from flows.prepare import prepare_split
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import SourceIdentity, describe_source
from stages.layout import RunDir
from stages.results import MlflowRun, RunSummary
from stages.split import split_settings
from tasks.family_results import gather_families
from tasks.registration import register
from tasks.retention import clean_after_killed_runs, tidy_after_run
from tasks.run_report import publish_run_report
from tasks.run_summary import build_summary, partly_failed
from tasks.stage_store import share
from tasks.stage_tasks import cached, evaluate_task, serve_split_task, train_task
from tasks.workspace import Workspace, last_successful_validation, link_stage, new_run_id, running


@flow(name="nightly-retrain", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))  # type: ignore[arg-type]  # prefect infers ThreadPoolTaskRunner[Never]
def retrain(
    config: RetrainConfig = RetrainConfig(), execution: Execution = Execution()
) -> RunSummary | State[RunSummary]:
    """Run the whole pipeline once; returns (and writes as summary.json) what each family scored.

    Stages whose input content, parameters and code match an earlier run's are reused from the
    cache (their folder here is a link to the earlier one). A family that fails is reported in the
    `RunSummary`'s `failed` and the others go on; the run then ends in the state "Partly failed"
    (a completed run, so the summary is still returned). It raises only when every family failed.
    """
    source = describe_source(config.dataset)
    workspace = Workspace.from_env()
    run_id = new_run_id()
    run_dir = workspace.run_dir(run_id)
    get_run_logger().info("run %s in %s", run_id, run_dir)
    with running(run_dir):  # a run killed outright leaves this lock free: the next run marks its MLflow runs killed
        clean_after_killed_runs(workspace)
        return run_stages(config, execution, source, workspace, run_id, run_dir)


def run_stages(
    config: RetrainConfig,
    execution: Execution,
    source: SourceIdentity,
    workspace: Workspace,
    run_id: str,
    run_dir: Path,
) -> RunSummary | State[RunSummary]:
    """The stages of one run, in order (see `retrain`)."""
    logger = get_run_logger()
    started = time.time()
    run = RunDir(run_dir)
    serve_split, train, evaluate = (
        cached(stage_task, workspace.cache, execution.refresh_cache)
        for stage_task in (serve_split_task, train_task, evaluate_task)
    )
    settings = split_settings(source, config.protocol, train_fraction=config.train_fraction, seed=config.seed)
    validated_dir, split_dir = prepare_split(
        config.dataset,
        run,
        workspace,
        settings,
        seed=config.seed,
        max_quarantine_share=config.max_quarantine_share,
        drift=config.drift,
        reference=last_successful_validation(workspace, source.name, before=run_id),
        refresh=execution.refresh_cache,
    )

    families, skipped = config.applicable_families(source)
    for family, reason in skipped.items():
        logger.info("skipping %s: %s", family, reason)
    if not families:
        raise ValueError(
            f"no selected family applies to {source.name}: " + "; ".join(f"{f} {r}" for f, r in skipped.items())
        )
    threads = divide_threads(execution)
    logger.info(
        "training %s, %d at a time, torch threads per task: %s", ", ".join(families), execution.workers, threads
    )

    def fit(data_dir: Path, out_dir: Path, family: str, name: str) -> Any:
        task = train.with_options(task_run_name=f"{name}-{family}")
        recipe = config.family_configs.get(family)
        return task.submit(data_dir, out_dir, family, recipe, config.seed, validated_dir, threads)

    stages: dict[str, list[tuple[Any, Path]]] = {}
    for family in families:
        trained = fit(split_dir, run.train(family), family, "train")
        evaluated = evaluate.submit(split_dir, trained, run.evaluate(family), family, config.k, validated_dir)
        stages[family] = [(trained, run.train(family)), (evaluated, run.evaluate(family))]
    # evaluate, then refit to serve: the same recipe on every row of the run is what gets registered
    serve_dir = share(link_stage(serve_split(split_dir, run.serve_split), run.serve_split))
    for family in families:
        stages[family].append((fit(serve_dir, run.serve(family), family, "serve"), run.serve(family)))
    failures = gather_families(stages)
    succeeded = [family for family in families if family not in failures]

    parent_run_id, registered, overall = register(
        workspace,
        run_id,
        run_dir,
        succeeded,
        dataset_name=source.name,
        protocol=settings.protocol,
        params={"dataset": config.dataset, "seed": config.seed, "k": config.k},
        gate=config.gate,
    )
    mlflow = MlflowRun(run_id=parent_run_id, tracking_uri=workspace.tracking_uri())
    config_json = config.model_dump(mode="json")
    summary = build_summary(
        run, run_id, config_json, source, settings.protocol, registered, overall, mlflow, failures, skipped
    )
    summary = publish_run_report(summary)  # HTML + plots in run_dir/report/, named in the summary
    summary.write(run.summary_file)
    tidy_after_run(run_dir, workspace, written_since=started, keep_runs=config.keep_runs)
    if not succeeded:
        raise RuntimeError(f"every family failed: {failures}")
    return partly_failed(summary) if failures else summary
