"""Batch scoring flow: the champion's top-k for every user it knows, or for every user of a file
of histories scored from those rows (issue 20), written to Parquet."""

import logging
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from prefect import flow, get_run_logger, task

from flows.config import ScoreConfig
from recsys_models.ids import decode_column
from stages.manifest import read_manifest
from stages.score import write_recommendations
from stages.score_histories import write_history_recommendations
from tasks.registry_admin import aliased_version
from tasks.retrying import retry_transient
from tasks.tracking import ensure_experiment, open_client
from tasks.workspace import Workspace, new_run_id

SCORING_EXPERIMENT = "recsys-batch-scoring"


@task(name="score-users", retries=2, retry_delay_seconds=[5, 15], retry_condition_fn=retry_transient)
def score_task(config: ScoreConfig, version: str, out_dir: Path, histories: Path | None = None) -> Path:
    """Load the registered version's pyfunc and write every known user's top-k, or with `histories`
    (a Parquet of user_id, item_id, timestamp rows) each of its users' top-k from those rows."""
    model = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version}")
    served = model.unwrap_python_model()
    recommender = served.model
    parameters = {"model": f"{config.model_name}/{version}", "alias": config.alias, "family": recommender.family}
    predict = lambda frame, params: model.predict(frame, params=params)  # noqa: E731
    if histories is not None:
        parameters["histories"] = str(histories)
        interactions = pl.read_parquet(histories)
        return write_history_recommendations(predict, interactions, config.k, out_dir, config.batch_size, parameters)
    users = decode_column(pl.DataFrame({"user_id": recommender.users.ids}), "user_id", served.id_texts, "user")
    return write_recommendations(predict, users["user_id"].to_numpy(), config.k, out_dir, config.batch_size, parameters)


@flow(name="batch-score")
def batch_score(config: ScoreConfig = ScoreConfig(), histories: Path | None = None) -> dict[str, Any]:
    """Score every known user with `model_name@alias` (with `histories`: every user of that file,
    from their rows there); log the output location to MLflow."""
    logger = get_run_logger()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    workspace = Workspace.from_env()
    client = open_client(workspace)
    version = aliased_version(client, config.model_name, config.alias)
    run_id = new_run_id()
    out_dir = score_task(config, version, workspace.root / "scores" / run_id, histories)
    counts = read_manifest(out_dir)["counts"]

    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts, SCORING_EXPERIMENT)
    run = client.create_run(experiment_id, run_name=run_id, tags={"model": f"{config.model_name}/{version}"})
    client.log_param(run.info.run_id, "output_dir", str(out_dir))
    for key, value in counts.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    logger.info("wrote %d recommendations for %d users to %s", counts["rows"], counts["users"], out_dir)
    return {"output_dir": str(out_dir), "model_version": version, "counts": counts}
