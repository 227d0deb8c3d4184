"""Incremental refresh of registered champions (issue 20): the champion's recipe refit on every row
of the run, starting from the champion's own parameters, registered as a new version.

A champion is refreshed when rows arrived after its data ended (its `data_end` tag) and it was
trained on the same dataset. Torch families start from the champion's parameters (users and items
remapped by id, new ones learnt) and run at most a few epochs per training loop; the other families
(closed form, neighbourhoods, composites) refit from scratch, which takes them seconds. Nothing is
evaluated here, so nothing is judged: a refreshed version is the champion's recipe on newer data,
and it becomes champion unless asked to register only. The nightly retrain stays the reference.
"""

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
from mlflow import MlflowClient

from recsys_models.base import MODEL_FILE
from recsys_models.columns import TIMESTAMP
from stages.manifest import read_manifest
from stages.train import WarmStartSpec, train
from tasks.promotion import DATA_END_TAG, GLOBAL_MODEL, champion_version, download_champion
from tasks.registry_admin import set_champion
from tasks.tracking import REFRESHED_FROM_TAG, log_pyfunc_version, registered_model_name


@dataclass(frozen=True)
class RefreshOutcome:
    """What happened to one registered model's champion."""

    registered_model: str
    champion: str | None
    status: str  # refreshed, up to date, skipped
    reason: str
    version: str | None = None
    promoted: bool = False
    arrived_rows: int = 0
    fit_seconds: float = 0.0
    warm_started: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def models_to_refresh(client: MlflowClient, families: list[str] | None) -> list[str]:
    """The registered models whose champion is refreshed: `recsys-<family>` of the families named
    (default: every family's), and the global `recsys` when no family is named."""
    names = (
        [registered_model_name(family) for family in families]
        if families
        else sorted(
            model.name for model in client.search_registered_models() if model.name.startswith(f"{GLOBAL_MODEL}-")
        )
    )
    return names + ([GLOBAL_MODEL] if not families else [])


def refresh_champion(
    client: MlflowClient,
    experiment_id: str,
    parent: str,
    name: str,
    serve_dir: Path,
    items_dir: Path,
    out_dir: Path,
    tags: dict[str, str],
    max_epochs: int,
    register_only: bool,
    lock_file: Path,
) -> RefreshOutcome:
    """Refresh `name`'s champion on the run's serve split (`serve_dir`: every row), logged as a child
    run of `parent`; `tags` are the run's identity tags (dataset, data_hash, data_end, ...)."""
    champion = champion_version(client, name)
    if champion is None:
        return RefreshOutcome(name, None, "skipped", "no champion to refresh")
    held = client.get_model_version(name, champion).tags
    if held.get("dataset") != tags["dataset"]:
        reason = f"v{champion} was trained on another dataset ({held.get('dataset')!r}): retrain instead"
        return RefreshOutcome(name, champion, "skipped", reason)
    tags = tags | {"protocol": held.get("protocol", tags["protocol"])}  # the nightly gate compares like with like
    champion_end = int(held.get(DATA_END_TAG, "0"))
    arrived = _rows_after(serve_dir, champion_end)
    if arrived == 0:
        return RefreshOutcome(name, champion, "up to date", f"no row arrived after v{champion}'s data ended")
    with tempfile.TemporaryDirectory() as scratch:
        saved = download_champion(name, champion, Path(scratch)) / "model"
        meta = json.loads((saved / MODEL_FILE).read_text())
        start = WarmStartSpec(saved, f"{name} v{champion}", max_epochs)
        started = time.perf_counter()
        trained = train(
            serve_dir, out_dir, meta["family"], meta["config"], meta["options"]["seed"], items_dir, warm_start=start
        )
        seconds = time.perf_counter() - started
    counts = read_manifest(trained)["counts"]
    how = f"warm-started from v{champion}, at most {max_epochs} epochs a loop" if counts["warm_started"] else "refit"
    reason = (
        f"refresh of v{champion} with {arrived} rows that arrived after its data ended ({how}); "
        "not evaluated: the nightly retrain judges the recipe"
    )
    child = client.create_run(
        experiment_id, run_name=f"refresh {name}", tags={"mlflow.parentRunId": parent, "family": meta["family"], **tags}
    ).info.run_id
    client.log_metric(child, "fit_seconds", seconds)
    client.log_metric(child, "arrived_rows", arrived)
    version = log_pyfunc_version(
        client,
        child,
        name,
        trained,
        tags
        | {
            REFRESHED_FROM_TAG: champion,
            "promotion_kind": "refresh",
            "promotion_reason": reason,
            "promotion_decision": "registered" if register_only else "promoted",
        },
    )
    client.set_terminated(child, "FINISHED")
    if not register_only:
        set_champion(client, name, version, lock_file)
        client.set_model_version_tag(name, version, "promotion_reason", reason)
    return RefreshOutcome(
        name,
        champion,
        "refreshed",
        reason,
        version,
        not register_only,
        arrived,
        round(seconds, 1),
        counts["warm_started"],
    )


def _rows_after(split_dir: Path, moment: int) -> int:
    """Rows of the split's training parts newer than `moment` (Unix seconds)."""
    parts = [pl.scan_parquet(split_dir / f"{name}.parquet").select(TIMESTAMP) for name in ("train", "valid")]
    return int(pl.concat(parts).filter(pl.col(TIMESTAMP) > moment).select(pl.len()).collect().item())
