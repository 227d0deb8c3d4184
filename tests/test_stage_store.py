"""The stage store: stage folders published to object storage (moto's local S3 server, and a file://
URL) and fetched whole on a machine that lacks them, by the task wrappers, the cache keys and the flow."""

import socket
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from recsys_models.io import atomic_write_json, atomic_write_parquet
from stages.layout import EvalDir
from stages.manifest import MANIFEST
from tasks.caching import StageContent, fingerprint, folder_fingerprint
from tasks.stage_store import STORE_ENV, StageStore
from tests.pipeline_helpers import write_ratings

BUCKET = "recsys-stages"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with one bucket; s3fs reaches it through AWS_ENDPOINT_URL."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    endpoint = f"http://127.0.0.1:{_free_port()}"
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=int(endpoint.rsplit(":", 1)[1]))
    server.start()
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(BUCKET)
    try:
        yield endpoint
    finally:
        patch.undo()
        server.stop()


@pytest.fixture(params=["s3", "file"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    request.getfixturevalue("s3_endpoint")
    return f"s3://{BUCKET}/{tmp_path.name}"


def _stage_folder(folder: Path) -> Path:
    """A finished stage folder: a table, a nested file, a temporary file, and its manifest."""
    atomic_write_parquet(pl.DataFrame({"user_id": [1, 2], "score": [0.5, 0.25]}), folder / "scores.parquet")
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(bytes(range(256)))
    (folder / ".scores.parquet.abc.tmp").write_bytes(b"half a file")
    atomic_write_json(folder / MANIFEST, {"stage": "train", "parameters": {"family": "ease"}, "inputs": {}})
    return folder


def test_a_folder_published_on_one_machine_is_fetched_whole_on_another(store_url: str, tmp_path: Path) -> None:
    here, there = tmp_path / "machine_a" / "ws", tmp_path / "machine_b" / "ws"
    folder = _stage_folder(here / "runs" / "r1" / "train" / "ease")
    StageStore(store_url, here).publish(folder)

    elsewhere = StageStore(store_url, there)
    fetched = elsewhere.fetch(there / "runs" / "r1" / "train" / "ease")
    assert folder_fingerprint(fetched) == folder_fingerprint(folder)
    assert (fetched / "model" / "weights.bin").read_bytes() == bytes(range(256))
    assert not list(fetched.glob(".*")), "temporary files are not published"
    assert [path.name for path in fetched.parent.iterdir()] == ["ease"], "no download folder is left behind"
    assert elsewhere.fetch(fetched) == fetched  # already here: nothing to do

    interrupted = there / "runs" / "r1" / "train" / "als"  # a local run of this stage that never finished
    StageStore(store_url, here).publish(_stage_folder(here / "runs" / "r1" / "train" / "als"))
    interrupted.mkdir()
    (interrupted / "scores.parquet").write_bytes(b"half")
    assert folder_fingerprint(elsewhere.fetch(interrupted)) == folder_fingerprint(
        here / "runs" / "r1" / "train" / "als"
    )


def test_tasks_beside_each_other_fetch_the_same_folder_at_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = (tmp_path / "store").as_uri()
    folder = _stage_folder(tmp_path / "a" / "runs" / "r1" / "split")
    StageStore(url, tmp_path / "a").publish(folder)
    wanted = tmp_path / "b" / "runs" / "r1" / "split"
    with ThreadPoolExecutor(4) as pool:
        fetched = list(pool.map(lambda _: StageStore(url, tmp_path / "b").fetch(wanted), range(8)))
    assert fetched == [wanted] * 8
    assert folder_fingerprint(wanted) == folder_fingerprint(folder)
    assert [path.name for path in wanted.parent.iterdir()] == ["split"]


def test_manifests_are_uploaded_after_every_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations.local import LocalFileSystem

    uploads: list[str] = []
    upload = LocalFileSystem.put_file

    def recorded(self: LocalFileSystem, source: str, destination: str, **options: object) -> None:
        uploads.append(destination.rsplit("/split/", 1)[1])
        upload(self, source, destination, **options)

    monkeypatch.setattr(LocalFileSystem, "put_file", recorded)
    folder = _stage_folder(tmp_path / "ws" / "runs" / "r1" / "split")
    _stage_folder(folder / "window_00")  # a backtest window: a stage folder inside a stage folder
    StageStore((tmp_path / "store").as_uri(), tmp_path / "ws").publish(folder)
    assert uploads[-2:] == ["window_00/manifest.json", "manifest.json"]
    assert sorted(uploads[:-2]) == [
        "model/weights.bin",
        "scores.parquet",
        "window_00/model/weights.bin",
        "window_00/scores.parquet",
    ]


def test_only_finished_folders_are_published_and_fetched(store_url: str, tmp_path: Path) -> None:
    store = StageStore(store_url, tmp_path / "ws")
    unfinished = tmp_path / "ws" / "runs" / "r1" / "split"
    unfinished.mkdir(parents=True)
    (unfinished / "train.parquet").write_bytes(b"rows")
    with pytest.raises(FileNotFoundError, match="only finished stages are published"):
        store.publish(unfinished)
    store.filesystem.makedirs(store.location(unfinished), exist_ok=True)
    store.filesystem.pipe_file(f"{store.location(unfinished)}/train.parquet", b"rows")  # an interrupted upload
    with pytest.raises(FileNotFoundError, match="neither on this machine nor in"):
        StageStore(store_url, tmp_path / "other").fetch(tmp_path / "other" / "runs" / "r1" / "split")


def test_a_published_folder_is_never_overwritten(store_url: str, tmp_path: Path) -> None:
    folder = _stage_folder(tmp_path / "ws" / "runs" / "r1" / "evaluate" / "ease")
    store = StageStore(store_url, tmp_path / "ws")
    store.publish(folder)
    first = folder_fingerprint(folder)
    (folder / "model" / "weights.bin").write_bytes(b"changed")
    store.publish(folder)
    copy = StageStore(store_url, tmp_path / "b").fetch(tmp_path / "b" / "runs" / "r1" / "evaluate" / "ease")
    assert folder_fingerprint(copy) == first


def test_cache_keys_hash_a_stored_folder_and_name_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (tmp_path / "store").as_uri()
    folder = _stage_folder(tmp_path / "ws" / "runs" / "r1" / "split")
    expected = fingerprint(folder)
    StageStore(url, tmp_path / "ws").publish(folder)
    key = StageContent().compute_key(None, {"split_dir": folder}, {})

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(STORE_ENV, url)
    for path in sorted(folder.rglob("*"), reverse=True):  # this machine lacks the folder
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    assert fingerprint(folder) == expected  # fetched, then hashed: not "absent"
    assert StageContent().compute_key(None, {"split_dir": folder}, {}) != key  # the store is in the key
    assert fingerprint(tmp_path / "ws" / "runs" / "r9") == "absent"  # neither here nor stored


@pytest.mark.flow
def test_retrain_publishes_every_stage_and_a_task_on_another_machine_fetches_its_inputs(
    prefect_server, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.retrain import RetrainConfig, retrain
    from flows.runners import Execution, run_flow
    from tasks.stage_tasks import evaluate_task

    url = f"s3://{BUCKET}/nightly"
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(STORE_ENV, url)
    config = RetrainConfig(dataset=str(write_ratings(tmp_path / "ratings.parquet")), families=["popularity", "bias"])
    summary = run_flow(retrain, config, Execution())
    assert summary.failed == {}

    run_dir = Path(summary.run_dir)
    store = StageStore(url, tmp_path / "ws")
    for stage in ("ingest", "validate", "split", "train/bias", "evaluate/bias", "train/popularity"):
        assert store.is_published(run_dir / stage), stage
    # a worker that shares no folder with the flow: its machine lacks the split and the model
    for stage in ("split", "train/bias", "validate"):
        local = (run_dir / stage).resolve()
        for path in sorted(local.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        local.rmdir()
    out_dir = evaluate_task.fn(
        run_dir / "split", run_dir / "train" / "bias", tmp_path / "ws" / "again", "bias", items_dir=run_dir / "validate"
    )
    metrics = EvalDir(out_dir).metrics()
    assert metrics["rmse"] == pytest.approx(summary.families["bias"].metrics["rmse"])
    assert store.is_published(out_dir)  # and the worker published what it wrote
