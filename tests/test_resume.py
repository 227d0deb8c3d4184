"""Resume and caching: a run killed (SIGKILL) in the middle of training is rerun and finishes, reusing
what had finished; no half-written file is ever read; changed input content is never a cache hit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import polars as pl
import pytest

from recsys_models.io import atomic_write_parquet, file_sha256
from stages.layout import RunDir
from stages.results import RunSummary
from tasks import caching
from tasks.caching import StageContent, fingerprint, folder_fingerprint, source_code_fingerprint
from tests.pipeline_helpers import BLOCK_ENV, REPO_ROOT, TEST_FAMILIES, write_ratings

FAMILIES = ["popularity", "blocking_popularity"]

RUN_SCRIPT = """
import sys
import tasks.caching
tasks.caching.source_code_fingerprint = lambda: sys.argv[2]  # the code as the test saw it (others edit it)
from recsys_models.registry import FAMILIES
from tests.pipeline_helpers import register_test_families
register_test_families(FAMILIES)
from flows.retrain import RetrainConfig, retrain
retrain(RetrainConfig.model_validate_json(sys.argv[1]))
"""

WRITE_SCRIPT = """
import sys
from pathlib import Path
import numpy as np, polars as pl
from recsys_models.io import atomic_write_parquet
target = Path(sys.argv[1])
atomic_write_parquet(pl.DataFrame({"x": np.arange(10)}), target)
big = pl.DataFrame({"x": np.random.default_rng(0).random(20_000_000)})
while True:
    atomic_write_parquet(big, target)
"""


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def whole_cache_records(cache_dir: Path) -> list[Path]:
    """Prefect's records that are fully written: it opens the file before it writes the record, so a
    record that exists may still be empty for a moment (a run killed then recomputes that stage)."""

    def is_whole(path: Path) -> bool:
        try:
            json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        return True

    return [path for path in cache_dir.iterdir() if is_whole(path)]


def stage_env(**extra: str) -> dict[str, str]:
    """The subprocess's environment: this one (the test's workspace) and this session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()} | extra


def test_folder_fingerprint_follows_content_not_timings_or_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "stage"
    atomic_write_parquet(pl.DataFrame({"x": [1, 2, 3]}), folder / "ratings.parquet")
    manifest = {"stage": "ingest", "parameters": {"seed": 1}, "inputs": {}, "seconds": 0.5, "finished_at": "t1"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    first = folder_fingerprint(folder)

    (folder / "manifest.json").write_text(json.dumps(manifest | {"seconds": 9.0, "finished_at": "t2"}))
    (folder / ".ratings.parquet.abc.tmp").write_bytes(b"half a file")
    assert folder_fingerprint(folder) == first  # when it ran, and temporary files, do not count

    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert folder_fingerprint(copy) == first  # where it lies does not count

    (folder / "manifest.json").write_text(json.dumps(manifest | {"parameters": {"seed": 2}}))
    assert folder_fingerprint(folder) != first
    (folder / "manifest.json").write_text(json.dumps(manifest))
    time.sleep(0.01)
    atomic_write_parquet(pl.DataFrame({"x": [1, 2, 4]}), folder / "ratings.parquet")
    assert folder_fingerprint(folder) != first


def test_stage_key_ignores_the_output_folder_and_follows_every_other_input(tmp_path: Path) -> None:
    data = write_ratings(tmp_path / "ratings.parquet")
    policy = StageContent()

    def key(**inputs: object) -> str:
        return policy.compute_key(None, inputs, {})

    base = key(split_dir=data, out_dir=tmp_path / "run1", family="ease", seed=1)
    assert key(split_dir=data, out_dir=tmp_path / "run2", family="ease", seed=1) == base
    assert key(split_dir=data, out_dir=tmp_path / "run1", family="ease", seed=2) != base
    assert key(split_dir=data, out_dir=tmp_path / "run1", family="als", seed=1) != base
    write_ratings(data, seed=1)  # same path, other content
    assert key(split_dir=data, out_dir=tmp_path / "run1", family="ease", seed=1) != base
    assert fingerprint(tmp_path / "missing") == "absent"


def test_a_killed_atomic_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    process = subprocess.Popen([sys.executable, "-c", WRITE_SCRIPT, str(target)], cwd=REPO_ROOT)
    try:
        wait_for(target.exists, 60, "the first write")
        wait_for(lambda: any(p.stat().st_size > 0 for p in tmp_path.glob(".table.parquet.*.tmp")), 60, "a write")
    finally:
        process.kill()
        process.wait()
    assert pl.read_parquet(target)["x"].to_list() == list(range(10))  # the old file, whole
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".") and p != target]


@pytest.mark.flow
def test_a_run_killed_during_training_is_rerun_and_reuses_what_finished(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.retrain import RetrainConfig, retrain
    from recsys_models.registry import FAMILIES as REGISTRY

    ratings = write_ratings(tmp_path / "ratings.parquet")
    workspace = tmp_path / "ws"
    marker = tmp_path / "fitting"
    monkeypatch.setenv("RECSYS_WORKSPACE", str(workspace))
    for cls in TEST_FAMILIES:
        monkeypatch.setitem(REGISTRY, cls.family, cls)
    config = RetrainConfig(dataset=str(ratings), families=FAMILIES)

    # one view of the code for both processes: in a shared checkout others may edit it meanwhile
    code = source_code_fingerprint()
    monkeypatch.setattr(caching, "source_code_fingerprint", lambda: code)
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, config.model_dump_json(), code],
        cwd=REPO_ROOT,
        env=stage_env(**{BLOCK_ENV: str(marker)}),
        start_new_session=True,
    )
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, 180, "training to start")
        (killed,) = (workspace / "runs").iterdir()
        # popularity finished: ingest, validate, split, serve_split, popularity's train and evaluate have
        # their cache records (its serving refit is queued behind the blocked family's evaluation)
        wait_for(lambda: len(whole_cache_records(workspace / "cache")) >= 6, 120, "popularity to finish")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not RunDir(killed).finished()
    assert not (killed / "train" / "blocking_popularity" / "manifest.json").exists()
    for manifest_path in killed.rglob("manifest.json"):  # everything a finished stage wrote is whole
        for name, output in json.loads(manifest_path.read_text())["outputs"].items():
            assert file_sha256(manifest_path.parent / name) == output["sha256"], manifest_path.parent / name

    # the same inputs, parameters and code, this time not blocked
    # (cast: the flow may return its State; called, it gives that State's RunSummary)
    summary = cast(RunSummary, retrain(config))
    run_dir = Path(summary.run_dir)
    assert summary.failed == {}
    assert set(summary.families) == set(FAMILIES)
    reused = {"ingest", "validate", "split", "serve_split", "train/popularity", "evaluate/popularity"}
    assert summary.reused == {stage: str(killed / stage) for stage in sorted(reused)}
    for stage in reused:  # the very files of the killed run, not recomputed
        assert (run_dir / stage / "manifest.json").read_text() == (killed / stage / "manifest.json").read_text()
    rerun = run_dir / "train" / "blocking_popularity"
    assert rerun.is_dir() and not rerun.is_symlink() and (rerun / "manifest.json").exists()

    write_ratings(ratings, seed=1)  # new content at the same path: nothing may be reused
    changed = cast(RunSummary, retrain(config.model_copy(update={"families": ["popularity"]})))
    assert changed.reused == {}
    assert changed.validation["valid_rows"] == pl.read_parquet(ratings).height
