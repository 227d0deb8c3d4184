"""Prefect tasks: thin wrappers over the stage functions in `stages/`."""

from pathlib import Path
from typing import Any

from prefect import task

from data_contracts import DriftBounds
from recsys_models.splitting import SplitSettings
from stages.evaluate import backtest_report, evaluate
from stages.ingest import ingest
from stages.split import rolling_split, split
from stages.train import train
from stages.validate import validate


def _is_io_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry downloads and file-system hiccups, never a data or config error."""
    try:
        state.result()
    except (OSError, TimeoutError):
        return True
    except Exception:
        return False
    return False


@task(name="ingest", retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=_is_io_error)
def ingest_task(source: str, out_dir: Path, data_dir: Path | None, cache_dir: Path, seed: int) -> Path:
    return ingest(source, out_dir, data_dir, cache_dir, seed)


@task(name="validate")
def validate_task(
    ingest_dir: Path, out_dir: Path, max_quarantine_share: float, reference_dir: Path | None, drift_bounds: DriftBounds
) -> Path:
    return validate(ingest_dir, out_dir, max_quarantine_share, reference_dir, drift_bounds)


@task(name="split")
def split_task(validated_dir: Path, out_dir: Path, settings: SplitSettings) -> Path:
    return split(validated_dir, out_dir, settings)


@task(name="rolling-split")
def rolling_split_task(
    validated_dir: Path, out_dir: Path, n_windows: int, window_days: float, valid_fraction: float
) -> list[Path]:
    return rolling_split(validated_dir, out_dir, n_windows, window_days, valid_fraction)


@task(name="train", task_run_name="train-{family}")
def train_task(
    split_dir: Path, out_dir: Path, family: str, config: dict[str, Any] | None, seed: int, items_dir: Path | None = None
) -> Path:
    return train(split_dir, out_dir, family, config, seed, items_dir)


@task(name="evaluate", task_run_name="evaluate-{family}")
def evaluate_task(
    split_dir: Path, train_dir: Path, out_dir: Path, family: str, k: int = 10, items_dir: Path | None = None
) -> Path:
    return evaluate(split_dir, train_dir, out_dir, k, items_dir)


@task(name="backtest-report")
def backtest_report_task(entries: list[dict[str, Any]], out_dir: Path, k: int = 10) -> Path:
    return backtest_report(entries, out_dir, k)
