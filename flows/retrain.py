"""The nightly retrain flow: ingest -> validate -> split -> train[family] x N -> evaluate -> register."""

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import RetrainConfig
from flows.prepare import prepare_split
from flows.runners import DEFAULT_WORKERS, Execution, divide_threads
from recsys_models.datasets.sources import SourceIdentity, describe_source
from recsys_models.io import atomic_write_json
from recsys_models.splitting import HELD_OUT_USERS, SplitSettings
from stages.layout import RunDir
from stages.manifest import read_manifest
from tasks.registration import register
from tasks.retention import (
    clean_after_killed_runs,
    collect_garbage,
    drop_evaluated_fits,
    store_once,
)
from tasks.run_report import publish_run_report
from tasks.stage_store import local, share
from tasks.stage_tasks import (
    cached,
    evaluate_task,
    serve_split_task,
    train_task,
)
from tasks.workspace import (
    Workspace,
    last_successful_validation,
    link_stage,
    new_run_id,
    running,
)

PARTLY_FAILED = "Partly failed"


def split_settings(config: RetrainConfig, source: SourceIdentity) -> SplitSettings:
    """The split stage's settings: the run's protocol (else the source's) with its defaults
    (PROTOCOLS.md), `train_fraction` for P1/P2, the run's seed for P5's draw of held-out users,
    and the source's feedback semantics (its dataset spec), which the later stages read from it."""
    protocol = config.protocol or source.protocol
    if protocol == "temporal-global":
        return SplitSettings(protocol=protocol, train_fraction=config.train_fraction, feedback=source.feedback)
    if protocol == HELD_OUT_USERS:
        return SplitSettings(protocol=protocol, seed=config.seed, feedback=source.feedback)
    return SplitSettings(protocol=protocol, feedback=source.feedback)


@flow(name="nightly-retrain", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))  # type: ignore[arg-type]  # prefect infers ThreadPoolTaskRunner[Never]
def retrain(config: RetrainConfig = RetrainConfig(), execution: Execution = Execution()) -> Any:
    """Run the whole pipeline once; returns (and writes as summary.json) what each family scored.

    Stages whose input content, parameters and code match an earlier run's are reused from the
    cache (their folder here is a link to the earlier one). A family that fails is reported in
    `summary["failed"]` and the others go on; the run then ends in the state "Partly failed"
    (a completed run, so the summary is still returned). It raises only when every family failed.
    """
    logger = get_run_logger()
    source = describe_source(config.dataset)
    workspace = Workspace.from_env()
    run_id = new_run_id()
    run_dir = workspace.run_dir(run_id)
    logger.info("run %s in %s", run_id, run_dir)
    with running(run_dir):  # a run killed outright leaves this lock free: the next run marks its MLflow runs killed
        clean_after_killed_runs(workspace)
        return run_stages(config, execution, source, workspace, run_id, run_dir)


def run_stages(
    config: RetrainConfig, execution: Execution, source: SourceIdentity, workspace: Workspace, run_id: str,
    run_dir: Path,
) -> Any:
    """The stages of one run, in order (see `retrain`)."""
    logger = get_run_logger()
    started = time.time()
    run = RunDir(run_dir)
    serve_split, train, evaluate = (
        cached(stage_task, workspace.cache, execution.refresh_cache)
        for stage_task in (serve_split_task, train_task, evaluate_task)
    )
    settings = split_settings(config, source)
    validated_dir, split_dir = prepare_split(
        config.dataset, run, workspace, settings, seed=config.seed, max_quarantine_share=config.max_quarantine_share,
        drift=config.drift, reference=last_successful_validation(workspace, source.name, before=run_id),
        refresh=execution.refresh_cache,
    )  # fmt: skip

    families, skipped = config.applicable_families(source)
    for family, reason in skipped.items():
        logger.info("skipping %s: %s", family, reason)
    if not families:
        raise ValueError(f"no selected family applies to {source.name}: " + "; ".join(f"{f} {r}" for f, r in skipped.items()))
    threads = divide_threads(execution)
    logger.info(
        "training %s, %d at a time, torch threads per task: %s", ", ".join(families), execution.workers, threads
    )
    trained = {
        family: train.submit(
            split_dir, run.train(family), family, config.family_configs.get(family), config.seed,
            validated_dir, threads,
        )  # fmt: skip
        for family in families
    }
    evaluated = {
        family: evaluate.submit(split_dir, future, run.evaluate(family), family, config.k, validated_dir)
        for family, future in trained.items()
    }
    # evaluate, then refit to serve: the same recipe on every row of the run is what gets registered
    serve_dir = share(link_stage(serve_split(split_dir, run.serve_split), run.serve_split))
    refit = train.with_options(task_run_name="serve-{family}")
    served = {
        family: refit.submit(
            serve_dir, run.serve(family), family, config.family_configs.get(family), config.seed,
            validated_dir, threads,
        )  # fmt: skip
        for family in families
    }
    failures: dict[str, str] = {}
    for family, future in evaluated.items():
        future.wait()
        served[family].wait()
        stages = (trained[family], future, served[family])
        failed_state = next((f.state for f in stages if not f.state.is_completed()), None)
        if failed_state is not None:  # the first failing stage holds the real error, not "upstream failed"
            failures[family] = str(failed_state.message or failed_state.name)
            logger.error("family %s failed: %s", family, failures[family])
            continue
        link_stage(local(trained[family].result()), run.train(family))  # fetched when a worker wrote it
        link_stage(local(future.result()), run.evaluate(family))
        link_stage(local(served[family].result()), run.serve(family))
    succeeded = [family for family in families if family not in failures]

    parent_run_id, registered, overall = register(
        workspace, run_id, run_dir, succeeded, dataset_name=source.name, protocol=settings.protocol,
        params={"dataset": config.dataset, "seed": config.seed, "k": config.k}, gate=config.gate,
    )  # fmt: skip
    summary = build_summary(run_id, run_dir, config, registered, failures)
    summary |= {"dataset_name": source.name, "feedback": source.feedback.model_dump(mode="json"), "skipped": skipped,
                "protocol": settings.protocol}
    summary["overall"] = overall
    summary["reused"] = reused_stages(run_dir)
    summary["mlflow"] = {"run_id": parent_run_id, "tracking_uri": workspace.tracking_uri()}
    # run report (HTML + plots in run_dir/report/, logged to the parent MLflow run): tasks/run_report.py
    report = publish_run_report(run_dir, summary, workspace.tracking_uri())
    summary["report"] = str(report) if report is not None else None
    atomic_write_json(run.summary_file, summary)
    dropped = drop_evaluated_fits(run_dir, workspace.cache)
    linked = store_once([run_dir, workspace.mlflow_artifacts], written_since=started)
    logger.info("disk: %.0f MiB of evaluated fits dropped, %.0f MiB of copies linked", dropped / 2**20, linked / 2**20)
    if config.keep_runs is not None:
        collect_garbage(workspace, config.keep_runs)
    if not succeeded:
        raise RuntimeError(f"every family failed: {failures}")
    if failures:
        return partly_failed(summary, failures)
    return summary


def partly_failed(summary: dict[str, Any], failures: dict[str, str]) -> State:
    """The final state of a run where some families failed: completed (the summary is its result),
    named "Partly failed", its message listing each failed family with its error."""
    listed = "; ".join(f"{family}: {error}" for family, error in failures.items())
    return Completed(name=PARTLY_FAILED, message=f"{len(failures)} family(ies) failed: {listed}", data=summary)


def reused_stages(run_dir: Path) -> dict[str, str]:
    """Stage folders of this run that are links to an earlier run's (cache hits), by stage."""
    run = RunDir(run_dir)
    folders = [run.ingest, run.validate, run.split, run.serve_split, *run.family_folders()]
    return {
        str(folder.relative_to(run_dir)): str(folder.resolve()) for folder in sorted(folders) if folder.is_symlink()
    }


def build_summary(
    run_id: str, run_dir: Path, config: RetrainConfig, registered: dict, failures: dict[str, str]
) -> dict[str, Any]:
    """What a person wants at the end of a run: counts, each family's metrics, where things are."""
    run = RunDir(run_dir)
    families = {
        family: {"metrics": run.evaluation(family).metrics(), "registration": entry}
        for family, entry in registered.items()
    }
    return {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "config": config.model_dump(mode="json"),
        "validation": read_manifest(run.validate)["counts"],
        "split": read_manifest(run.split)["counts"],
        "families": families,
        "failed": failures,
    }
