"""The retrain flow on a Dask task runner: a local cluster of 2 worker processes, reached by its address,
with the workers publishing to a stage store."""

import os
from pathlib import Path
from typing import cast

import pytest

from flows.runners import Execution, task_runner, torch_threads
from tasks.stage_store import StageStore
from tests.pipeline_helpers import write_ratings


def test_execution_picks_the_runner_and_divides_threads() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    local = task_runner(Execution(workers=3))
    assert isinstance(local, ThreadPoolTaskRunner) and local._max_workers == 3
    cluster = task_runner(Execution(runner="dask", workers=2))
    assert isinstance(cluster, DaskTaskRunner) and cluster.cluster_kwargs["n_workers"] == 2
    remote = task_runner(Execution(runner="dask", dask_address="tcp://10.0.0.5:8786"))
    assert cast(DaskTaskRunner, remote).address == "tcp://10.0.0.5:8786"  # task_runner is typed as any runner
    assert torch_threads(Execution(workers=1)) == os.cpu_count()
    assert torch_threads(Execution(workers=4 * (os.cpu_count() or 1))) == 1
    assert torch_threads(Execution(runner="dask", dask_address="tcp://10.0.0.5:8786")) is None
    with pytest.raises(ValueError, match="dask_address"):
        Execution(dask_address="tcp://10.0.0.5:8786")


@pytest.mark.flow
def test_retrain_runs_on_a_local_dask_cluster_of_two_worker_processes(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    from flows.retrain import RetrainConfig, retrain
    from flows.runners import run_flow

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))  # a folder every worker reads
    monkeypatch.setenv("RECSYS_STAGE_STORE", (tmp_path / "store").as_uri())  # and a store the workers publish to
    ratings = write_ratings(tmp_path / "ratings.parquet")
    config = RetrainConfig(dataset=str(ratings), families=["popularity", "bias"])
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        with get_task_stream(client) as stream:
            summary = run_flow(retrain, config, Execution(runner="dask", dask_address=cluster.scheduler_address))

    assert summary.failed == {}
    assert set(summary.families) == {"popularity", "bias"}
    run_dir = Path(summary.run_dir)
    for stage in ("ingest", "validate", "split", "serve_split", "train/bias", "evaluate/bias", "serve/bias"):
        assert (run_dir / stage / "manifest.json").exists(), stage
    assert summary.families["bias"].metrics["rmse"] > 0
    # the fanned-out tasks (2 x train, 2 x evaluate, 2 x serving refit) ran on the cluster's worker
    # processes; ingest, validate, split and serve_split are called, not submitted: the flow's process
    assert len(stream.data) == 6
    assert {record["worker"] for record in stream.data} <= workers
    store = StageStore((tmp_path / "store").as_uri(), tmp_path / "ws")
    for stage in ("ingest", "validate", "split", "train/bias", "evaluate/bias", "evaluate/popularity"):
        assert store.is_published(run_dir / stage), stage  # the workers published what they wrote
