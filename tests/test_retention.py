"""Retention (`recsys gc`): old runs and stale cache records go; what a kept run links to, what an
alias was registered from and each dataset's drift reference stay."""

from pathlib import Path

import pytest
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata

from cli.main import main
from stages.layout import RunDir
from stages.results import FamilyOutcome, MlflowRun, PromotionDecision, RunSummary
from tasks.retention import collect_garbage, store_once
from tasks.workspace import Workspace, link_stage


def make_run(workspace: Workspace, run_id: str, dataset: str = "shop", links: dict[str, Path] | None = None) -> Path:
    """A finished run folder: ingest and a trained family (1 MiB of weights), a summary."""
    run_dir = workspace.run_dir(run_id)
    for stage in ("ingest", "train/ease"):
        if links and stage in links:
            link_stage(links[stage], run_dir / stage)
            continue
        (run_dir / stage).mkdir(parents=True)
        (run_dir / stage / "weights.npy").write_bytes(b"\0" * 2**20)
    decision = PromotionDecision(registered_model="recsys-ease", version="1", promoted=True, reason="first version")
    RunSummary(
        run_id=run_id,
        run_dir=str(run_dir),
        config={},
        validation={},
        split={},
        families={"ease": FamilyOutcome(metrics={}, registration=decision)},
        failed={},
        dataset_name=dataset,
        mlflow=MlflowRun(run_id="parent", tracking_uri="sqlite:///mlflow.db"),
    ).write(RunDir(run_dir).summary_file)
    return run_dir


def cache_record(workspace: Workspace, key: str, result: Path) -> Path:
    """A Prefect cache record whose result is a stage folder, as the stage tasks persist them."""
    workspace.cache.mkdir(parents=True, exist_ok=True)
    record = ResultRecord(result=result, metadata=ResultRecordMetadata(storage_key=key))
    (workspace.cache / key).write_bytes(record.serialize())
    return workspace.cache / key


def register_with_alias(workspace: Workspace, run_id: str) -> None:
    from mlflow import MlflowClient

    workspace.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(workspace.tracking_uri())
    client.create_registered_model("recsys-ease")
    version = client.create_model_version("recsys-ease", source=str(workspace.root), tags={"pipeline_run_id": run_id})
    client.set_registered_model_alias("recsys-ease", "champion", version.version)


def test_gc_keeps_the_newest_runs_what_they_link_to_aliases_and_drift_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace(tmp_path / "ws")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    other = make_run(workspace, "20260101T000000-a", dataset="other")  # the only run of "other": its drift reference
    champion = make_run(workspace, "20260102T000000-b")
    first = make_run(workspace, "20260103T000000-c")
    old = make_run(workspace, "20260104T000000-d")
    newest = make_run(workspace, "20260105T000000-e", links={"ingest": first / "ingest"})
    register_with_alias(workspace, champion.name)
    reused = cache_record(workspace, "reused", first / "ingest")
    stale = cache_record(workspace, "stale", old / "train" / "ease")
    (workspace.cache / "not-a-record").write_text("lock")

    collected = collect_garbage(workspace, keep_runs=1)

    assert collected.kept_runs == sorted([other.name, champion.name, newest.name])
    assert collected.removed_runs == [first.name, old.name]
    assert not old.exists()
    # the first run is gone but the ingest folder the newest run reuses stays, whole
    assert (newest / "ingest" / "weights.npy").stat().st_size == 2**20
    assert sorted(p.name for p in first.iterdir()) == ["ingest"]
    assert not stale.exists() and reused.exists() and (workspace.cache / "not-a-record").exists()
    assert collected.removed_cache_records == 1
    assert 2 * 2**20 <= collected.freed_bytes < 4 * 2**20  # old's two stages and first's train/ease


def test_gc_dry_run_removes_nothing_and_the_cli_refuses_a_bad_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    workspace = Workspace(tmp_path / "ws")
    monkeypatch.setenv("RECSYS_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs = [make_run(workspace, f"2026010{day}T000000-x") for day in range(1, 4)]
    assert main(["gc", "--keep-runs", "1", "--dry-run"]) == 0
    assert "would remove runs/20260101T000000-x" in capsys.readouterr().out
    assert all(run.exists() for run in runs)
    assert main(["gc", "--keep-runs", "0"]) == 2
    assert "keep_runs must be at least 1" in capsys.readouterr().err
    assert main(["gc", "--keep-runs", "2"]) == 0
    assert not runs[0].exists() and runs[1].exists() and runs[2].exists()


def test_store_once_links_identical_large_files_and_leaves_the_rest(tmp_path: Path) -> None:
    weights = bytes(range(256)) * 4096  # 1 MiB
    files = {
        name: tmp_path / name
        for name in (
            "run/ease/w.npy",
            "run/hybrid/parts/ease/w.npy",
            "mlflow/w.npy",
            "run/other/w.npy",
            "run/small/a.bin",
            "run/small/b.bin",
        )
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("run/ease/w.npy", "run/hybrid/parts/ease/w.npy", "mlflow/w.npy"):
        files[name].write_bytes(weights)
    files["run/other/w.npy"].write_bytes(weights[::-1])  # same size, other bytes
    for name in ("run/small/a.bin", "run/small/b.bin"):
        files[name].write_bytes(b"tiny")

    assert store_once([tmp_path / "run", tmp_path / "mlflow"]) == 2 * len(weights)
    inodes = {name: path.stat().st_ino for name, path in files.items()}
    assert inodes["run/ease/w.npy"] == inodes["run/hybrid/parts/ease/w.npy"] == inodes["mlflow/w.npy"]
    assert inodes["run/other/w.npy"] != inodes["run/ease/w.npy"]
    assert inodes["run/small/a.bin"] != inodes["run/small/b.bin"]  # below the size worth hashing
    assert all(files[name].read_bytes() == weights for name in ("run/ease/w.npy", "mlflow/w.npy"))
    assert store_once([tmp_path / "run", tmp_path / "mlflow"]) == 0  # already stored once
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary link left behind


def test_after_a_killed_run_its_mlflow_runs_are_marked_killed_and_its_temporaries_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient

    from tasks.retention import clean_after_killed_runs
    from tasks.tracking import ensure_experiment, open_client
    from tests.pipeline_helpers import REPO_ROOT

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = Workspace(tmp_path / "ws")
    client = open_client(workspace)
    experiment = ensure_experiment(client, workspace.mlflow_artifacts)
    killed, alive, unlocked = (
        workspace.run_dir(name) for name in ("20260101T000000-k", "20260101T000000-a", "20260101T000000-u")
    )
    mlflow_runs = {
        run_dir.name: client.create_run(experiment, tags={"pipeline_run_id": run_dir.name}).info.run_id
        for run_dir in (killed, alive, unlocked)
    }
    unlocked.mkdir(parents=True)  # a run of a flow that takes no run lock (a backtest): never touched
    hold = "import sys, time\nfrom pathlib import Path\nfrom tasks.workspace import running\nwith running(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
    holders = {
        run_dir.name: subprocess.Popen(
            [sys.executable, "-c", hold, str(run_dir)], cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE
        )
        for run_dir in (killed, alive)
    }
    try:
        for holder in holders.values():
            assert holder.stdout is not None  # stdout=PIPE
            assert holder.stdout.readline().strip() == "held"
        holders[killed.name].kill()  # kill -9 in the middle of the run
        holders[killed.name].wait()
        stale = killed / "train" / "ease" / ".state.npz.abc123.tmp"
        fresh = alive / "train" / "ease" / ".state.npz.def456.tmp"
        for path in (stale, fresh):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 1000)
        os.utime(stale, (0, 0))  # written long ago

        clean_after_killed_runs(workspace)
    finally:
        for holder in holders.values():
            holder.kill()
            holder.wait()
    status = {
        name: MlflowClient(workspace.tracking_uri()).get_run(run_id).info.status for name, run_id in mlflow_runs.items()
    }
    assert status == {killed.name: "KILLED", alive.name: "RUNNING", unlocked.name: "RUNNING"}
    assert not stale.exists() and fresh.exists()  # a live write's temporary file stays


def test_a_read_only_workspace_is_one_line_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import errno

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    real_write = Path.write_bytes

    def read_only(path: Path, data: bytes) -> int:
        if path.name.startswith(".write-check."):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)  # root ignores chmod: the file system says no
    assert main(["--plain", "score"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "read-only" in err and str(tmp_path / "ws") in err


def test_evaluated_fits_are_dropped_once_decided_with_their_cache_records(tmp_path: Path) -> None:
    from tasks.retention import drop_evaluated_fits

    workspace = Workspace(tmp_path / "ws")
    earlier = workspace.run_dir("20260101T000000-a")
    run_dir = workspace.run_dir("20260102T000000-b")
    for folder in (earlier / "train" / "als", run_dir / "train" / "ease", run_dir / "serve" / "ease"):
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "state.npz").write_bytes(b"\0" * 4096)
        (folder / "manifest.json").write_text("{}")
    link_stage(earlier / "train" / "als", run_dir / "train" / "als")  # reused from the earlier run
    records = [
        cache_record(workspace, key, folder)
        for key, folder in (
            ("ease", run_dir / "train" / "ease"),
            ("als", earlier / "train" / "als"),
            ("serve", run_dir / "serve" / "ease"),
        )
    ]

    assert drop_evaluated_fits(run_dir, workspace.cache) == 2 * 4096
    assert not (run_dir / "train" / "ease" / "model").exists() and not (earlier / "train" / "als" / "model").exists()
    assert (run_dir / "train" / "ease" / "manifest.json").exists()  # what was measured stays
    assert (run_dir / "serve" / "ease" / "model" / "state.npz").exists()  # the served refit stays
    assert [record.exists() for record in records] == [False, False, True]


def test_a_run_links_only_the_files_it_wrote(tmp_path: Path) -> None:
    import os

    weights = bytes(range(256)) * 4096
    old, new_a, new_b = (tmp_path / name for name in ("old.npy", "new_a.npy", "new_b.npy"))
    for path in (old, new_a, new_b):
        path.write_bytes(weights)
    os.utime(old, (1_000, 1_000))  # written by an earlier run
    assert store_once([tmp_path], written_since=2_000) == len(weights)
    assert new_a.stat().st_ino == new_b.stat().st_ino != old.stat().st_ino
