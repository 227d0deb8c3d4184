"""How a pipeline flow runs: its task runner (a local thread pool or Dask), workers, torch threads, cache.

The same flow runs on a bounded thread pool in this process (`local`, the default and what the
deployments use) or on a Dask cluster (`dask`): the cluster at `dask_address`, or a local cluster of
`workers` worker processes when no address is given. On Dask, every worker must read the stage
folders: either RECSYS_WORKSPACE is a shared folder, or each machine keeps a local workspace at the
same path and RECSYS_STAGE_STORE names an object store that mirrors the stages (`tasks/stage_store.py`).
"""

import os
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

if TYPE_CHECKING:  # Prefect is imported when a runner is made, so that `Execution` is checked without it
    from prefect import Flow
    from prefect.task_runners import TaskRunner

DEFAULT_WORKERS = 2


class Execution(BaseModel):
    """Run-time settings of a flow run; they change how fast it runs, never what it computes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runner: Literal["local", "dask"] = Field(
        default="local", description="local: a thread pool in the flow's process; dask: a Dask cluster."
    )
    workers: PositiveInt = Field(
        default=DEFAULT_WORKERS,
        description="Tasks run at once: thread-pool workers, or worker processes of a local Dask cluster.",
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler address of a running Dask cluster (dask only); None starts a local one."
    )
    refresh_cache: bool = Field(
        default=False, description="Recompute every stage instead of reusing cached results of earlier runs."
    )

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "Execution":
        if self.dask_address and self.runner != "dask":
            raise ValueError("dask_address is only used with runner='dask'")
        return self


def torch_threads(execution: Execution) -> int | None:
    """Torch threads per parallel task so that threads x tasks <= cores of this machine; None on a
    remote Dask cluster (its workers keep their own setting)."""
    if execution.dask_address:
        return None
    return max(1, (os.cpu_count() or 1) // execution.workers)


def divide_threads(execution: Execution) -> int | None:
    """Set torch's thread count in this process once, before fanning out; returns the per-task count
    that tasks running in other processes (Dask workers) set for themselves."""
    threads = torch_threads(execution)
    if threads is not None:
        torch.set_num_threads(threads)
    return threads


def task_runner(execution: Execution) -> "TaskRunner[Any]":
    """The task runner `execution` names."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if execution.runner == "local":
        return ThreadPoolTaskRunner(max_workers=execution.workers)
    from prefect_dask import DaskTaskRunner

    if execution.dask_address:
        return DaskTaskRunner(address=execution.dask_address)
    # one thread per worker process: torch threads are set per task (torch_threads)
    cluster = {"n_workers": execution.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    return DaskTaskRunner(cluster_kwargs=cluster)


def run_flow(pipeline_flow: "Flow", config: Any, execution: Execution) -> Any:
    """Call `pipeline_flow(config, execution)` on the task runner `execution` names."""
    return pipeline_flow.with_options(task_runner=task_runner(execution))(config=config, execution=execution)
