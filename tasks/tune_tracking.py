"""MLflow for a hyperparameter search: experiment `recsys-tune`, one parent run per search, one child
run per trial of the study (a trial an earlier, killed search ran is logged by the next one)."""

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from optuna.trial import TrialState

from reporting.tuning_plot import plot_search
from tasks.tracking import code_version, ensure_experiment, log_metrics, numeric_metrics, open_client, start_parent_run
from tasks.workspace import Workspace

RUN_STATUS = {TrialState.COMPLETE.name: "FINISHED", TrialState.PRUNED.name: "KILLED"}  # else FAILED
EXPERIMENT = "recsys-tune"
TEST_METRICS = ("ndcg_at_10", "recall_at_10", "rmse", "mae")


def log_search(workspace: Workspace, summary: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Log the search `summary` describes (as `flows.tune.tune` builds it); returns the parent run id and the store."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = open_client(workspace)
    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts, EXPERIMENT)
    tags = {
        "study": summary["study"],
        "dataset": summary["dataset"],
        "protocol": summary["protocol"],
        "code_version": code_version(),
        "pipeline_run_id": summary["run_id"],
    }
    params = {
        "family": summary["family"],
        "dataset": summary["dataset"],
        "protocol": summary["protocol"],
        "space": json.dumps(summary["space"]),
        "base_config": json.dumps(summary["base_config"]),
        "objective": summary["objective"],
    }
    parent = start_parent_run(client, experiment_id, summary["run_id"], params, tags)
    try:
        best = summary["best"]
        client.log_batch(parent, params=[Param(f"best_{key}", str(value)) for key, value in best["params"].items()])
        figures = {
            "best_value": best["value"],
            "best_trial": best["number"],
            "base_value": summary["base_value"],
            "finished_trials": len(summary["trials"]),
        }
        test = summary["test_metrics"]
        for name in TEST_METRICS:
            figures |= {f"test_{key}": test.get(key) for key in (name, f"{name}_ci_low", f"{name}_ci_high")}
        figures |= {f"importance_{key}": value for key, value in (summary["importances"] or {}).items()}
        _log_figures(client, parent, numeric_metrics(figures))
        values, pruned = (
            [(trial["number"], trial["value"]) for trial in summary["trials"] if trial["state"] == state]
            for state in ("COMPLETE", "PRUNED")
        )
        plot = plot_search(
            values, summary["objective"], summary["maximize"], run_dir / "search.png", pruned, summary["importances"]
        )
        if plot is not None:
            client.log_artifact(parent, str(plot), artifact_path="search")
        with tempfile.TemporaryDirectory() as folder:
            best_file = Path(folder) / "best_config.json"
            best_file.write_text(json.dumps({summary["family"]: summary["best_config"]}, indent=2))
            client.log_artifact(parent, str(best_file), artifact_path="search")
        _log_trials(client, experiment_id, parent, summary)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return {"run_id": parent, "tracking_uri": workspace.tracking_uri()}


def _log_trials(client: Any, experiment_id: str, parent: str, summary: dict[str, Any]) -> None:
    """One child run per finished trial of the study that no earlier search logged."""
    logged = {
        int(run.data.tags["trial_number"])
        for run in client.search_runs([experiment_id], filter_string=f"tags.study = '{summary['study']}'")
        if "trial_number" in run.data.tags
    }
    for trial in summary["trials"]:
        if trial["number"] in logged:
            continue
        tags = {
            "mlflow.parentRunId": parent,
            "study": summary["study"],
            "trial_number": str(trial["number"]),
            "state": trial["state"],
        }
        if "error" in trial["user_attrs"]:
            tags["error"] = trial["user_attrs"]["error"]
        child = client.create_run(experiment_id, run_name=f"trial-{trial['number']}", tags=tags).info.run_id
        figures = numeric_metrics({summary["objective"]: trial["value"]} | trial["user_attrs"])
        client.log_batch(child, params=[Param(key, str(value)) for key, value in trial["params"].items()])
        _log_figures(client, child, figures)
        client.set_terminated(child, RUN_STATUS.get(trial["state"], "FAILED"))


def _log_figures(client: Any, run_id: str, figures: dict[str, float]) -> None:
    log_metrics(client, run_id, [Metric(key, value, int(time.time() * 1000), 0) for key, value in figures.items()])
