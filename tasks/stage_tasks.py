"""Prefect tasks: thin wrappers over the stage functions in `stages/`.

Each reads its input folders through `local` and publishes its output through `share`: with a stage
store (RECSYS_STAGE_STORE, `tasks/stage_store.py`) a task can run on a machine that shares no folder
with the others; without one both are no-ops."""

from pathlib import Path
from typing import Any

import torch
from prefect import Task, task

from data_contracts import DriftBounds
from recsys_models.datasets.spec import Feedback
from recsys_models.splitting import SplitSettings
from stages.evaluate import backtest_report, evaluate
from stages.ingest import ingest
from stages.split import rolling_split, serve_split, split
from stages.train import train
from stages.validate import validate
from tasks.caching import INGEST_CACHE, STAGE_CACHE
from tasks.stage_store import local, share

# Stage results (the output folder's path) persist under the workspace's cache folder (see
# `cached`); a rerun with the same input content, parameters and code gets the earlier folder back.
CACHED: dict[str, Any] = {"cache_policy": STAGE_CACHE, "persist_result": True}


def _is_io_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry downloads and file-system hiccups, never a data or config error."""
    try:
        state.result()
    except (OSError, TimeoutError):
        return True
    except Exception:
        return False
    return False


@task(
    name="ingest",
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_is_io_error,
    cache_policy=INGEST_CACHE,
    persist_result=True,
)
def ingest_task(source: str, out_dir: Path, data_dir: Path | None, cache_dir: Path, seed: int) -> Path:
    return share(ingest(source, out_dir, data_dir, cache_dir, seed))


@task(name="validate", **CACHED)
def validate_task(
    ingest_dir: Path, out_dir: Path, max_quarantine_share: float, reference_dir: Path | None, drift_bounds: DriftBounds
) -> Path:
    return share(validate(local(ingest_dir), out_dir, max_quarantine_share, local(reference_dir), drift_bounds))


@task(name="split", **CACHED)
def split_task(validated_dir: Path, out_dir: Path, settings: SplitSettings) -> Path:
    return share(split(local(validated_dir), out_dir, settings))


@task(name="serve-split", **CACHED)
def serve_split_task(split_dir: Path, out_dir: Path) -> Path:
    return share(serve_split(local(split_dir), out_dir))


@task(name="rolling-split", **CACHED)
def rolling_split_task(
    validated_dir: Path,
    out_dir: Path,
    n_windows: int,
    window_days: float,
    valid_fraction: float,
    feedback: Feedback | None = None,
) -> list[Path]:
    window_dirs = rolling_split(
        local(validated_dir), out_dir, n_windows, window_days, valid_fraction, feedback=feedback
    )
    share(out_dir)  # the windows' folders with it
    return window_dirs


@task(name="train", task_run_name="train-{family}", **CACHED)
def train_task(
    split_dir: Path,
    out_dir: Path,
    family: str,
    config: dict[str, Any] | None,
    seed: int,
    items_dir: Path | None = None,
    torch_threads: int | None = None,
) -> Path:
    """`torch_threads`: set in the process that runs the task (a Dask worker starts with one)."""
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return share(train(local(split_dir), out_dir, family, config, seed, local(items_dir)))


@task(name="evaluate", task_run_name="evaluate-{family}", **CACHED)
def evaluate_task(
    split_dir: Path, train_dir: Path, out_dir: Path, family: str, k: int = 10, items_dir: Path | None = None
) -> Path:
    return share(evaluate(local(split_dir), local(train_dir), out_dir, k, local(items_dir)))


@task(name="backtest-report")
def backtest_report_task(entries: list[dict[str, Any]], out_dir: Path, k: int = 10) -> Path:
    return backtest_report(entries, out_dir, k)


def cached(
    stage_task: Task, cache_dir: Path, refresh: bool = False
) -> Any:  # Any: Task's call overloads defeat checkers
    """`stage_task` with its results and cache records in `cache_dir` (a folder every worker
    reads); `refresh` recomputes and overwrites the cached result instead of reusing it."""
    return stage_task.with_options(result_storage=cache_dir, refresh_cache=refresh)
