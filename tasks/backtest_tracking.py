"""MLflow record of a backtest (experiment `recsys-backtest`): the metric-over-time table (and plot) as
artefacts of a parent run with each family's headline metrics per window (step = window index), and
one child run per family with every metric per window."""

import logging
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from recsys_models.splitting import ROLLING
from stages.evaluate import BACKTEST_TABLE
from stages.layout import EvalDir, RunDir
from stages.manifest import MANIFEST, read_manifest
from tasks.tracking import code_version, ensure_experiment, log_metrics, numeric_metrics, open_client, start_parent_run
from tasks.workspace import Workspace

EXPERIMENT = "recsys-backtest"


def log_backtest(
    workspace: Workspace,
    run_id: str,
    params: dict[str, Any],
    families: list[str],
    run_dir: Path,
    report_dir: Path,
    entries: list[dict[str, Any]],
    k: int,
) -> str:
    """Log the backtest whose `entries` (window, family, eval_dir) the report in `report_dir` tabled;
    `params` are the parent run's parameters (`dataset` among them). Returns the parent run id."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = open_client(workspace)
    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts / "backtest", EXPERIMENT)
    tags = {
        "data_hash": read_manifest(RunDir(run_dir).validate)["outputs"]["ratings.parquet"]["sha256"],
        "protocol": ROLLING,
        "code_version": code_version(),
        "dataset": params["dataset"],
        "pipeline_run_id": run_id,
    }
    parent = start_parent_run(client, experiment_id, run_id, params, tags)
    for path in sorted(report_dir.glob(f"{BACKTEST_TABLE}.*")):
        client.log_artifact(parent, str(path), artifact_path="backtest")
    client.log_artifact(parent, str(RunDir(run_dir).split / MANIFEST), artifact_path="split")
    now = int(time.time() * 1000)
    headline = {
        "n_eval_users",
        "n_eval_rows",
        "rmse",
        "mae",
        f"ndcg_at_{k}",
        f"recall_at_{k}",
        f"hit_rate_at_{k}",
        f"coverage_at_{k}",
    }
    parent_metrics = []
    for family in families:
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
        log_metrics(client, child, child_metrics)
        client.set_terminated(child, "FINISHED")
    log_metrics(client, parent, parent_metrics)
    client.set_terminated(parent, "FINISHED")
    return parent
