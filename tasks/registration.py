"""Registration of a retrain run in MLflow: the parent run with the run's data figures, one child run
and registered version per family with the promotion gate's decision, then the global pick `recsys`
(sequentially: one SQLite writer)."""

import contextlib
import logging
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.columns import TIMESTAMP
from recsys_models.registry import family_class
from stages.layout import RunDir
from stages.manifest import MANIFEST, read_manifest
from stages.results import PromotionDecision
from tasks.promotion import BASELINE_FAMILY, DATA_END_TAG, promote, promote_global
from tasks.promotion_gate import PromotionGate
from tasks.retrying import RetryingClient
from tasks.tracking import (
    code_version,
    ensure_experiment,
    log_family,
    numeric_metrics,
    open_client,
    registered_already,
    registered_model_name,
    start_parent_run,
)
from tasks.workspace import Workspace


def register(
    workspace: Workspace,
    run_id: str,
    run_dir: Path,
    families: list[str],
    *,
    dataset_name: str,
    protocol: str,
    params: dict[str, Any],
    gate: PromotionGate,
) -> tuple[str, dict[str, PromotionDecision], PromotionDecision | None]:
    """Log the run to MLflow (`params`: the parent run's parameters), register each family's model and
    run the promotion `gate` on it, then the global pick `recsys`.

    Returns the parent run id, each family's registration and decision, and the global decision."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = open_client(workspace)
    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts)
    run = RunDir(run_dir)
    validated = read_manifest(run.validate)
    tags = {
        "data_hash": validated["outputs"]["ratings.parquet"]["sha256"],
        "protocol": protocol,
        "code_version": code_version(),
        "dataset": dataset_name,
        "pipeline_run_id": run_id,
        DATA_END_TAG: str(data_end(run.serve_split)),
    }
    parent = start_parent_run(client, experiment_id, run_id, params | {"dataset_name": dataset_name}, tags)
    try:
        registered, overall = log_and_gate(client, experiment_id, parent, workspace, gate, run, families, tags)
    except BaseException:  # the parent run never stays RUNNING; the original error surfaces
        with contextlib.suppress(Exception):
            client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return parent, registered, overall


def log_and_gate(
    client: RetryingClient,
    experiment_id: str,
    parent: str,
    workspace: Workspace,
    gate: PromotionGate,
    run: RunDir,
    families: list[str],
    tags: dict[str, str],
) -> tuple[dict[str, PromotionDecision], PromotionDecision | None]:
    """Under the parent run: the run's data figures, then each family's version and decision, then `recsys`'s."""
    counts = read_manifest(run.validate)["counts"]
    drift = {f"drift_{key}": value for key, value in counts.get("drift", {}).items() if key != "breaches"}
    for key, value in numeric_metrics(counts | drift).items():
        client.log_metric(parent, key, value)
    if counts.get("drift", {}).get("breaches"):
        client.set_tag(parent, "drift_breaches", "; ".join(counts["drift"]["breaches"]))
    client.log_artifact(parent, str(run.split / MANIFEST), artifact_path="split")
    client.log_artifact(parent, str(run.validation_report_file), artifact_path="validation")
    if run.data_docs.exists():
        client.log_artifacts(parent, str(run.data_docs), artifact_path="validation/data_docs")
    registered, candidates, unchanged = {}, {}, set()
    lock = workspace.mlflow_db.parent / "promotion.lock"
    baseline = run.evaluate(BASELINE_FAMILY) if BASELINE_FAMILY in families else None
    for family in families:
        eval_dir, train_dir = run.evaluate(family), run.serve(family)
        name = registered_model_name(family)
        existing = registered_already(client, name, train_dir, tags)
        if existing is not None:  # a rerun that changed nothing: no new version, no new decision
            unchanged.add(family)
            reason = f"unchanged: v{existing} already holds this recipe trained on the same data and code"
            registered[family] = PromotionDecision(
                registered_model=name, version=existing, promoted=None, reason=reason
            )
            candidates[family] = (name, existing, eval_dir, run.train(family))
            continue
        entry = log_family(
            client, experiment_id, parent, family, run.split, train_dir, eval_dir, tags, evaluated_dir=run.train(family)
        )
        floor = baseline if family != BASELINE_FAMILY and not family_class(family).needs_ratings else None
        decision = promote(
            client,
            entry["registered_model"],
            entry["version"],
            eval_dir,
            run.split,
            run.promotion,
            gate,
            lock,
            floor,
            run.validate,
            run.train(family),
        )
        registered[family] = PromotionDecision(
            run_id=entry["run_id"],
            registered_model=entry["registered_model"],
            version=entry["version"],
            promoted=decision.promoted,
            reason=decision.reason,
        )
        candidates[family] = (entry["registered_model"], entry["version"], eval_dir, run.train(family))
    overall = promote_global(
        client, candidates, run.split, run.promotion, gate, lock, baseline, unchanged, run.validate
    )
    return registered, overall


def data_end(split_dir: Path) -> int:
    """The newest interaction time (Unix seconds) of a split's parts: what a model fitted on them knew."""
    parts = [pl.scan_parquet(split_dir / f"{name}.parquet").select(TIMESTAMP) for name in ("train", "valid", "test")]
    return int(pl.concat(parts).select(pl.col(TIMESTAMP).max()).collect().item())
