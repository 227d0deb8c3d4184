"""Where a run's outputs live: one workspace folder (RECSYS_WORKSPACE, default ./workspace)."""

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys_models.exceptions import RecsysError
from stages.layout import RunDir
from stages.results import load_summary

TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",  # MLflow ignores "1"
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


@dataclass(frozen=True)
class Workspace:
    """The folder layout: runs/<run id>/<stage>/, mlflow/ (SQLite + artefacts), prefect/, downloads/."""

    root: Path

    @classmethod
    def from_env(cls) -> "Workspace":
        """RECSYS_WORKSPACE (default ./workspace): a folder, shared by every worker when the runner is Dask.

        An object-store URL (s3://, gs://, ...) is refused: stages publish each file by an atomic
        rename and show reused stages as symbolic links, which object stores do not offer. Keep the
        workspace a local folder and name the bucket in RECSYS_STAGE_STORE (`tasks/stage_store.py`).
        """
        value = os.environ.get("RECSYS_WORKSPACE", "workspace")
        if "://" in value:
            raise ValueError(
                f"RECSYS_WORKSPACE={value!r} is a URL; it must be a folder (stages write by atomic rename and "
                "link reused stages): keep it local and set RECSYS_STAGE_STORE to the URL to share stages through it"
            )
        return cls(Path(value).resolve())

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def cache(self) -> Path:
        """Prefect's stage results and cache records (what a rerun reuses)."""
        return self.root / "cache"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI when set (a real server), else the embedded SQLite store."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"


def finished_dataset(run_dir: Path) -> str | None:
    """The dataset name (a built-in name or a spec's `name`, whatever path it was read from) of a
    run that finished (its summary.json exists and at least one family succeeded), else None."""
    run = RunDir(run_dir)
    if not run.finished():
        return None
    summary = load_summary(run.summary_file)
    return summary.dataset if summary.families else None


def last_successful_validation(workspace: Workspace, dataset: str, before: str) -> Path | None:
    """The validate folder of the newest finished run before `before` on the dataset named `dataset`:
    the drift check's reference."""
    if not workspace.runs.exists():
        return None
    for run_dir in sorted(workspace.runs.iterdir(), reverse=True):
        if run_dir.name < before and finished_dataset(run_dir) == dataset:
            return RunDir(run_dir).validate
    return None


def link_stage(produced: Path, expected: Path) -> Path:
    """Show a stage folder reused from an earlier run (`produced`) at this run's place for it
    (`expected`) as a symbolic link, made atomically; returns `expected`. A no-op when the stage
    ran in this run."""
    if expected.exists() and expected.resolve() == produced.resolve():
        return expected
    expected.parent.mkdir(parents=True, exist_ok=True)
    temp = expected.parent / f".{expected.name}.{secrets.token_hex(4)}.link"
    os.symlink(produced.resolve(), temp, target_is_directory=True)
    os.replace(temp, expected)
    return expected


def data_dir_from_env() -> Path | None:
    """RECSYS_DATA_DIR: a folder already holding ml-latest-small/ and ml-100k/ (then nothing is downloaded)."""
    value = os.environ.get("RECSYS_DATA_DIR")
    return Path(value).resolve() if value else None


def configure_environment(workspace: Workspace) -> None:
    """Defaults for an entry point, set before Prefect or MLflow is imported: no telemetry, local homes."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_HOME", str(workspace.prefect_home))
    # Prefect's temporary server gets 20 s to start by default: too short on two busy cores
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect does not create parents


class WorkspaceNotWritable(RecsysError):
    """The workspace is read-only, full or not ours: nothing can run."""


def check_writable(workspace: Workspace) -> None:
    """One clear line when the workspace (or a store already in it) cannot be written, before anything
    starts; creates the workspace folder itself, nothing inside it."""
    stores = [workspace.runs, workspace.mlflow_db.parent, Path(os.environ.get("PREFECT_HOME", workspace.prefect_home))]
    for folder in [workspace.root, *(store for store in stores if store.exists())]:
        probe = folder / f".write-check.{secrets.token_hex(4)}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise WorkspaceNotWritable(
                f"the workspace cannot be written ({folder}: {error.strerror or error}; read-only?): "
                "set RECSYS_WORKSPACE to a writable folder"
            ) from None


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (made when missing): one process of this machine at a time."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


RUN_LOCK = ".running"  # held by the process running the run; a killed process releases it


def running(run_dir: Path) -> AbstractContextManager[None]:
    """Mark `run_dir`'s run as alive for as long as this block runs (a lock the OS frees when the process dies)."""
    return file_lock(run_dir / RUN_LOCK)


def is_running(run_dir: Path) -> bool:
    """Whether a live process holds `run_dir`'s run lock (False for a finished or killed run)."""
    if not (run_dir / RUN_LOCK).exists():
        return False
    with open(run_dir / RUN_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
