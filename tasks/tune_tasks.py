"""Prefect task of a hyperparameter search: one trial, a thin wrapper over `stages.tune`."""

from pathlib import Path
from typing import Any

import torch
from prefect import task

from stages.tune import TrialResult, validation_objective
from tasks.stage_store import local


@task(name="trial", task_run_name="trial-{number}-{family}")
def trial_task(
    split_dir: Path, family: str, config: dict[str, Any], seed: int, number: int,
    items_dir: Path | None = None, torch_threads: int | None = None,
) -> TrialResult:  # fmt: skip
    """Trial `number`: `config` fitted on the split's train part, measured on its valid part."""
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return validation_objective(local(split_dir), family, config, seed, local(items_dir))
