"""Refresh flow (issue 20): bring each champion up to the newest data without a full retrain.

Ingest and validate the source, split it by its protocol and take every row (the serve split, as a
retrain's refit to serve), then refresh each champion from its own parameters
(`tasks/refresh_champions.py`). Folders go to `workspace/refreshes/<run id>/`.
"""

import logging
from typing import Any

from prefect import flow, get_run_logger

from data_contracts import DriftBounds
from flows.config import RefreshConfig, RetrainConfig
from flows.prepare import prepare_split
from recsys_models.datasets.sources import describe_source
from recsys_models.io import atomic_write_json
from stages.layout import RunDir
from stages.manifest import read_manifest
from stages.split import serve_split, split_settings
from tasks.promotion import DATA_END_TAG
from tasks.refresh_champions import models_to_refresh, refresh_champion
from tasks.registration import data_end
from tasks.tracking import code_version, ensure_experiment, open_client, start_parent_run
from tasks.workspace import Workspace, new_run_id

REFRESHES = "refreshes"


@flow(name="refresh")
def refresh(config: RefreshConfig = RefreshConfig()) -> dict[str, Any]:
    """Refresh the champions of `config.families` (default: all, and `recsys`); returns (and writes as
    summary.json) what happened to each."""
    logger = get_run_logger()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    workspace = Workspace.from_env()
    source = describe_source(config.dataset)
    client = open_client(workspace)
    names = models_to_refresh(client, config.families)
    run_id = new_run_id()
    run = RunDir(workspace.root / REFRESHES / run_id)
    defaults = RetrainConfig()
    settings = split_settings(source, None, train_fraction=defaults.train_fraction, seed=defaults.seed)
    validated, split_dir = prepare_split(
        config.dataset,
        run,
        workspace,
        settings,
        seed=defaults.seed,
        max_quarantine_share=config.max_quarantine_share,
        drift=DriftBounds(),
        reference=None,
        refresh=False,
    )
    serve_dir = serve_split(split_dir, run.serve_split)
    tags = {
        "dataset": source.name,
        "protocol": settings.protocol,
        "code_version": code_version(),
        "data_hash": read_manifest(run.validate)["outputs"]["ratings.parquet"]["sha256"],
        "pipeline_run_id": run_id,
        DATA_END_TAG: str(data_end(serve_dir)),
    }
    experiment_id = ensure_experiment(client, workspace.mlflow_artifacts)
    parameters = {"kind": "refresh", "warm_epochs": config.warm_epochs, "register_only": config.register_only}
    parent = start_parent_run(client, experiment_id, f"refresh {run_id}", parameters, tags)
    lock = workspace.mlflow_db.parent / "promotion.lock"
    outcomes = []
    for name in names:
        outcome = refresh_champion(
            client,
            experiment_id,
            parent,
            name,
            serve_dir,
            validated,
            run.serve(name),
            tags,
            config.warm_epochs,
            config.register_only,
            lock,
        )
        logger.info("%s: %s (%s)", name, outcome.status, outcome.reason)
        outcomes.append(outcome.as_dict())
    client.set_terminated(parent, "FINISHED")
    summary = {
        "run_id": run_id,
        "run_dir": str(run.path),
        "dataset": source.name,
        "data_end": int(tags[DATA_END_TAG]),
        "models": outcomes,
    }
    atomic_write_json(run.summary_file, summary)
    return summary
