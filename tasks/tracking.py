"""MLflow: one parent run per flow run, a child run per family, pyfunc models registered with aliases.

The active MLflow run is per thread, so everything here takes explicit run ids (STACK_NOTES.md).
"""

import hashlib
import json
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

import recsys_models
from recsys_models.ids import ROLE, decode_column
from reporting.console import quiet_registration
from stages.ingest import ID_TABLE
from stages.layout import EvalDir
from stages.manifest import MANIFEST
from stages.model_card import render_model_card
from tasks.promotion import RECIPE_TAG
from tasks.retrying import RetryingClient, with_retries
from tasks.workspace import Workspace, file_lock

EXPERIMENT = "recsys-retrain"
PYFUNC_FILE = Path(__file__).resolve().parents[1] / "serving" / "pyfunc_model.py"
MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch call
VERSION_TAG_METRICS = ("rmse", "mae", "ndcg_at_10", "recall_at_10", "n_eval_users", "n_eval_rows")
SERVING_REQUIREMENTS = (
    "torch",
    "numpy",
    "scipy",
    "polars",
    "pyarrow",
    "pandas",
    "pydantic",
    "mlflow",
    "faiss-cpu",
    "lightgbm",
)


def registered_model_name(family: str) -> str:
    return f"recsys-{family}"


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        return commit or metadata.version("recsys-pipeline")
    except (OSError, subprocess.SubprocessError):
        return metadata.version("recsys-pipeline")


def open_client(workspace: Workspace) -> RetryingClient:
    """A client of the workspace's tracking store (also made the default of `mlflow`'s functions).

    MLflow opens the store when the client is made and, on a fresh workspace, creates its schema:
    under a lock, so first runs started at once do not race that migration."""
    mlflow.set_tracking_uri(workspace.tracking_uri())
    with file_lock(workspace.mlflow_db.parent / "init.lock"):
        return RetryingClient()


def ensure_experiment(client: MlflowClient, artifact_root: Path, name: str = EXPERIMENT) -> str:
    """The id of experiment `name`, created with `artifact_root` as its artefact folder on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_root.as_uri())
        except MlflowException:  # a run started at the same moment created it
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    return experiment.experiment_id


def start_parent_run(client: MlflowClient, experiment_id: str, run_name: str, params: dict, tags: dict) -> str:
    run = client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics MLflow can store: finite numbers, not flags or labels."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value
    }


def _id_texts(model_dir: Path) -> pl.DataFrame | None:
    """The text of the source's coded ids, saved beside the model when the source has any."""
    path = model_dir / f"{ID_TABLE}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def _signature(id_texts: pl.DataFrame | None) -> ModelSignature:
    """Ids are text where the source has text ids (`recsys_models.ids`), else integers; `history`
    (a list of item ids per row, null for none) asks for scores from that history (issue 20)."""
    roles = set(id_texts[ROLE].to_list()) if id_texts is not None else set()
    user, item = ("string" if role in roles else "long" for role in ("user", "item"))
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec(user, "user_id"),
                ColSpec(item, "item_id", required=False),
                ColSpec(Array(DataType[item]), "history", required=False),
            ]
        ),
        outputs=Schema(
            [ColSpec(user, "user_id"), ColSpec(item, "item_id"), ColSpec("float", "score"), ColSpec("long", "rank")]
        ),
        params=ParamSchema([ParamSpec("k", "long", 10)]),
    )


def recipe_of(train_manifest: dict[str, Any]) -> str:
    """A short hash of the family and its configuration: versions with the same recipe are refreshes."""
    parameters = train_manifest["parameters"]
    recipe = json.dumps({"family": parameters["family"], "config": parameters["config"]}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


REFRESHED_FROM_TAG = "refreshed_from"  # the champion version a `recsys refresh` started from
IDENTITY_TAGS = ("dataset", "protocol", "data_hash", "code_version", "seed", RECIPE_TAG)


def registered_already(client: MlflowClient, name: str, train_dir: Path, tags: dict[str, str]) -> str | None:
    """The version of `name` that already holds this recipe trained on this data with this code and
    seed (a rerun that changed nothing), or None."""
    manifest = json.loads((train_dir / MANIFEST).read_text())
    wanted = tags | {"seed": str(manifest["parameters"]["seed"]), RECIPE_TAG: recipe_of(manifest)}
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    for version in versions:  # a refresh (warm-started) never stands for the recipe fitted from scratch
        if REFRESHED_FROM_TAG not in version.tags and all(
            version.tags.get(key) == str(wanted.get(key)) for key in IDENTITY_TAGS
        ):
            return str(version.version)
    return None


def log_family(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    family: str,
    split_dir: Path,
    train_dir: Path,
    eval_dir: Path,
    tags: dict[str, str],
    evaluated_dir: Path | None = None,
) -> dict[str, Any]:
    """Child run with params, metrics, history and artefacts; the pyfunc logged, registered and aliased.

    `train_dir` holds the model that is registered (refit on every row of the run);
    `evaluated_dir`, the same recipe trained on the split's training part, the one `eval_dir` judged."""
    train_manifest = json.loads((train_dir / MANIFEST).read_text())
    evaluation = EvalDir(eval_dir)
    metrics = evaluation.metrics()
    child = client.create_run(
        experiment_id,
        run_name=family,
        tags={"mlflow.parentRunId": parent_run_id, "family": family, **tags},
    )
    run_id = child.info.run_id
    params = {"family": family, "seed": train_manifest["parameters"]["seed"]}
    params |= {f"config.{key}": value for key, value in train_manifest["parameters"]["config"].items()}
    now = int(time.time() * 1000)
    final = numeric_metrics(metrics) | {"fit_seconds": train_manifest["counts"]["fit_seconds"]}
    for report in sorted((train_dir / "model").rglob("index_report.json")):  # ANN index: build time, size, recall
        final |= numeric_metrics(json.loads(report.read_text()))
    for report in sorted((train_dir / "model").glob("ranker_report.json")):  # stacked: candidate recall, rounds
        final |= numeric_metrics(json.loads(report.read_text()))
    entries = [Metric(key, value, now, 0) for key, value in final.items()]
    for record in json.loads((train_dir / "history.json").read_text()):  # per-epoch curves
        step = int(record["epoch"])
        entries += [Metric(key, float(value), now, step) for key, value in record.items() if key != "epoch"]
    client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
    log_metrics(client, run_id, entries)
    client.log_artifact(run_id, str(split_dir / MANIFEST), artifact_path="split")
    client.log_artifact(run_id, str(evaluation.metrics_file), artifact_path="evaluation")
    client.log_artifact(run_id, str(evaluation.recommendations_file), artifact_path="evaluation")
    split_manifest = json.loads((split_dir / MANIFEST).read_text())
    evaluated = json.loads((evaluated_dir / MANIFEST).read_text()) if evaluated_dir is not None else None
    card = render_model_card(family, metrics, train_manifest, split_manifest, tags, evaluated, train_dir / "model")
    client.log_text(run_id, card, "model_card.md")

    name = registered_model_name(family)
    headline = {key: f"{metrics[key]:.4f}" for key in VERSION_TAG_METRICS if key in metrics}
    version = log_pyfunc_version(client, run_id, name, train_dir, {"protocol": metrics["protocol"], **tags, **headline})
    client.set_terminated(run_id, "FINISHED")
    return {"run_id": run_id, "registered_model": name, "version": version}


def log_pyfunc_version(client: MlflowClient, run_id: str, name: str, train_dir: Path, tags: dict[str, Any]) -> str:
    """Log the saved model of `train_dir` as a pyfunc under `run_id`, register it as a new version of
    `name` with `tags` plus its seed and recipe, and return the version."""
    train_manifest = json.loads((train_dir / MANIFEST).read_text())
    id_texts = _id_texts(train_dir / "model")
    example = pl.DataFrame({"user_id": [1]})  # the signature's example: a user id (coded ids decoded)
    with mlflow.start_run(run_id=run_id), quiet_registration():
        info = with_retries(
            mlflow.pyfunc.log_model,
            name="model",
            python_model=str(PYFUNC_FILE),
            artifacts={"model_dir": str(train_dir / "model")},
            code_paths=[str(Path(recsys_models.__file__).parent)],
            pip_requirements=[f"{package}=={metadata.version(package)}" for package in SERVING_REQUIREMENTS],
            signature=_signature(id_texts),
            input_example=decode_column(example, "user_id", id_texts, "user").to_pandas(),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    seed = {"seed": train_manifest["parameters"]["seed"], RECIPE_TAG: recipe_of(train_manifest)}
    for key, value in {**tags, **seed}.items():
        client.set_model_version_tag(name, version, key, str(value))
    return version


def log_metrics(client: Any, run_id: str, metrics: list[Metric]) -> None:
    """Log `metrics` to `run_id`: one request per MAX_BATCH_METRICS, not one per metric."""
    for start in range(0, len(metrics), MAX_BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_BATCH_METRICS])
