"""Retention: each file's bytes stored once, and `recsys gc` to remove old run folders.

`store_once` hard-links identical large files (a family's weights saved again inside the hybrids
built on it, the registered copy in MLflow's artefacts, a champion downloaded for the gate) so
their bytes are on disk once. Every writer here replaces a file by an atomic rename and never
edits one in place, so linked files cannot change under each other.

`collect_garbage` removes old run folders and the cache records that point into them.

`clean_after_killed_runs` (at the start of every run) marks the MLflow runs of a run that was
killed outright (kill -9, power loss) KILLED, and removes the half-written files of its atomic
writes once they are an hour old.

What stays: the newest `keep_runs` runs, each dataset's newest finished run (the drift check's
reference), every run that produced a registered version holding an alias (champion,
previous_champion, challenger), and every stage folder one of those runs shows as a link (a reused
stage lives in the run that computed it). MLflow's artefacts are never touched: a registered
version is self-contained there. A cache record whose stage folder is gone is removed too, so a
later run recomputes that stage instead of reusing a folder that no longer exists.
"""

import logging
import os
import secrets
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recsys_models.io import file_sha256
from stages.train import MODEL_DIR
from tasks.workspace import RUN_LOCK, Workspace, finished_dataset, is_running

logger = logging.getLogger(__name__)

DEFAULT_KEEP_RUNS = 14  # two weeks of nightly runs
RUN_TAG = "pipeline_run_id"  # the model version tag naming the run that registered it
LINK_FROM_BYTES = 1 << 20  # smaller files are not worth hashing
STALE_AFTER_SECONDS = 3600  # a temporary file this old belongs to no live write
TEMPORARY_SUFFIXES = (".tmp", ".link")  # atomic writes (recsys_models/io.py) and stage links


@dataclass
class Collected:
    """What a collection kept and removed, and the bytes it freed."""

    kept_runs: list[str] = field(default_factory=list)
    removed_runs: list[str] = field(default_factory=list)
    removed_cache_records: int = 0
    freed_bytes: int = 0

    def describe(self) -> str:
        return (
            f"kept {len(self.kept_runs)} run(s), removed {len(self.removed_runs)} run(s) and "
            f"{self.removed_cache_records} cache record(s), freed {self.freed_bytes / 2**20:.1f} MiB"
        )


def store_once(roots: list[Path], min_bytes: int = LINK_FROM_BYTES, written_since: float = 0.0) -> int:
    """Hard-link files of equal content (at least `min_bytes`, written at or after `written_since`,
    a Unix time) under `roots` to one copy; the bytes saved. A run passes its start time, so only
    its own files are hashed; `recsys gc` passes none and goes over everything."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for root in roots:
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                stat = path.stat()
                if stat.st_size >= min_bytes and stat.st_mtime >= written_since:
                    by_size[stat.st_size].append(path)
    saved = 0
    for size, paths in by_size.items():
        if len({path.stat().st_ino for path in paths}) < 2:
            continue
        first_of: dict[str, Path] = {}
        for path in sorted(paths, key=lambda p: p.stat().st_ino):
            keeper = first_of.setdefault(file_sha256(path), path)
            if keeper.stat().st_ino != path.stat().st_ino:
                temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.link"
                try:
                    os.link(keeper, temp)
                except OSError:  # another file system, or one without hard links: keep both copies
                    continue
                os.replace(temp, path)
                saved += size
    return saved


def runs_with_aliases(tracking_uri: str) -> set[str]:
    """The runs (pipeline run ids) whose registered versions hold an alias."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = set()
    for model in client.search_registered_models():
        for version in set(model.aliases.values()):
            tags = client.get_model_version(model.name, version).tags
            if RUN_TAG in tags:
                runs.add(tags[RUN_TAG])
    return runs


def newest_finished_run_per_dataset(runs: list[Path]) -> set[str]:
    """Each dataset's newest finished run (see `finished_dataset`)."""
    newest: dict[str, str] = {}
    for run_dir in runs:  # oldest first, so the newest wins
        dataset = finished_dataset(run_dir)
        if dataset is not None:
            newest[dataset] = run_dir.name
    return set(newest.values())


def linked_folders(run_dir: Path) -> set[Path]:
    """The real folders this run's stage links point to (stages reused from earlier runs)."""
    return {path.resolve() for path in run_dir.rglob("*") if path.is_symlink()}


def size_of(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def remove_except(folder: Path, needed: set[Path]) -> int:
    """Remove `folder` except the `needed` folders inside it (and their parents); the bytes freed."""
    resolved = folder.resolve()
    if resolved in needed:
        return 0
    if not folder.is_symlink() and folder.is_dir() and any(resolved in n.parents for n in needed):
        return sum(remove_except(child, needed) for child in folder.iterdir())
    freed = size_of(folder)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    else:
        folder.unlink()
    return freed


def cache_records(cache_dir: Path) -> Iterator[tuple[Path, object]]:
    """Prefect's cache records in `cache_dir` with their results (records it cannot read are skipped)."""
    from prefect._internal.result_records import ResultRecord

    for record_path in cache_dir.iterdir() if cache_dir.exists() else []:
        try:
            yield record_path, ResultRecord.deserialize(record_path.read_bytes()).result
        except Exception:  # noqa: BLE001 - not a record we can read: leave it to Prefect
            continue


def stale_cache_records(cache_dir: Path) -> list[Path]:
    """Prefect's cache records whose result is a folder that no longer exists."""
    return [path for path, result in cache_records(cache_dir) if isinstance(result, Path) and not result.exists()]


def drop_evaluated_fits(run_dir: Path, cache_dir: Path) -> int:
    """Once the gate has decided, remove the evaluated fits' saved models (`train/<family>/model`;
    what they measured stays in `evaluate/`, their manifests and the model cards) and the cache
    records of those train stages, so a rerun fits them again; the bytes freed. The served refit
    (`serve/<family>`) is what is registered and kept."""
    train = run_dir / "train"
    folders = {folder.resolve() for folder in train.iterdir()} if train.exists() else set()
    freed = 0
    for folder in folders:
        if (folder / MODEL_DIR).is_dir():
            freed += size_of(folder / MODEL_DIR)
            shutil.rmtree(folder / MODEL_DIR)
    for record, result in cache_records(cache_dir):
        if isinstance(result, Path) and result.resolve() in folders:
            record.unlink(missing_ok=True)
    return freed


def collect_garbage(workspace: Workspace, keep_runs: int, dry_run: bool = False) -> Collected:
    """Remove what no kept run, alias or drift reference needs (see the module docstring)."""
    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
    runs = sorted(p for p in workspace.runs.iterdir() if p.is_dir()) if workspace.runs.exists() else []
    keep = {run.name for run in runs[-keep_runs:]}
    keep |= newest_finished_run_per_dataset(runs) | (
        runs_with_aliases(workspace.tracking_uri()) & {r.name for r in runs}
    )
    needed = set().union(*(linked_folders(run) for run in runs if run.name in keep))
    collected = Collected(kept_runs=sorted(keep))
    for run in runs:
        if run.name in keep:
            continue
        collected.removed_runs.append(run.name)
        collected.freed_bytes += size_of(run) if dry_run else remove_except(run, needed)
    if not dry_run:
        for record in stale_cache_records(workspace.cache):
            record.unlink()
            collected.removed_cache_records += 1
    logger.info("retention: %s", collected.describe())
    return collected


def tidy_after_run(run_dir: Path, workspace: Workspace, written_since: float, keep_runs: int | None) -> None:
    """Once a run has registered: drop its evaluated fits, store its new files' bytes once, and keep
    the newest `keep_runs` runs (None keeps all)."""
    dropped = drop_evaluated_fits(run_dir, workspace.cache)
    linked = store_once([run_dir, workspace.mlflow_artifacts], written_since=written_since)
    logger.info("disk: %.0f MiB of evaluated fits dropped, %.0f MiB of copies linked", dropped / 2**20, linked / 2**20)
    if keep_runs is not None:
        collect_garbage(workspace, keep_runs)


def remove_stale_temporaries(roots: list[Path], older_than: float = STALE_AFTER_SECONDS) -> int:
    """Remove hidden temporary files (`.<name>.<random>.tmp`, `.link`) older than `older_than` seconds; the bytes freed."""
    now, freed = time.time(), 0
    for root in roots:
        for path in root.rglob(".*") if root.exists() else []:
            if path.suffix in TEMPORARY_SUFFIXES and now - path.lstat().st_mtime > older_than:
                freed += path.lstat().st_size
                path.unlink(missing_ok=True)
    return freed


def mark_interrupted_runs(tracking_uri: str, workspace: Workspace) -> list[str]:
    """MLflow runs still RUNNING whose pipeline run was started under a run lock (`running`) that no
    live process holds any more: set KILLED; their ids."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    marked = []
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []:
        pipeline_run = run.data.tags.get(RUN_TAG)
        run_dir = workspace.run_dir(pipeline_run) if pipeline_run else None
        if run_dir is not None and (run_dir / RUN_LOCK).exists() and not is_running(run_dir):
            client.set_terminated(run.info.run_id, "KILLED")
            marked.append(run.info.run_id)
    return marked


def clean_after_killed_runs(workspace: Workspace) -> None:
    """What a run killed outright left behind: its MLflow runs marked KILLED, its temporary files removed."""
    has_store = "MLFLOW_TRACKING_URI" in os.environ or workspace.mlflow_db.exists()  # never create one here
    marked = mark_interrupted_runs(workspace.tracking_uri(), workspace) if has_store else []
    freed = remove_stale_temporaries([workspace.runs, workspace.cache])
    if marked or freed:
        logger.warning(
            "cleaned up after killed runs: %d MLflow run(s) marked KILLED, %.1f MiB of temporary files removed",
            len(marked),
            freed / 2**20,
        )
