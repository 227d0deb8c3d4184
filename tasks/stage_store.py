"""Stage folders mirrored on object storage, for Dask workers on machines that share no folder.

With RECSYS_STAGE_STORE set to an fsspec URL (`s3://bucket/recsys`, `gs://...`, `file:///...`), every
process keeps its own local workspace at the same RECSYS_WORKSPACE path, and the store holds each
finished stage folder under its path relative to the workspace:

- `publish(folder)`: a task uploads the folder it wrote, every file first and the manifest last. An
  object appears whole or not at all, so a folder whose manifest is in the store is complete.
- `fetch(folder)`: a task that needs a folder its machine lacks downloads it from the store into a
  temporary sibling, then renames it into place; a folder that is neither here nor stored is an error.

The store URL is part of every stage's cache key (`tasks/caching.py`), so a reused stage was
published to the same store. Without RECSYS_STAGE_STORE nothing is mirrored: the workspace itself
must then be a folder every worker reads.
"""

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import fsspec
from fsspec.core import url_to_fs

from stages.manifest import MANIFEST
from tasks.workspace import Workspace

STORE_ENV = "RECSYS_STAGE_STORE"


@dataclass(frozen=True)
class StageStore:
    """The stage folders of the workspace at `root`, mirrored under `url`."""

    url: str
    root: Path

    @classmethod
    def from_env(cls, root: Path) -> "StageStore | None":
        url = os.environ.get(STORE_ENV)
        return cls(url.rstrip("/"), root) if url else None

    @property
    def filesystem(self) -> fsspec.AbstractFileSystem:
        return url_to_fs(self.url)[0]

    def location(self, folder: Path) -> str:
        """Where `folder` (a path inside the workspace, links not followed) lives in the store."""
        relative = Path(os.path.abspath(folder)).relative_to(Path(os.path.abspath(self.root)))
        return f"{url_to_fs(self.url)[1].rstrip('/')}/{relative.as_posix()}"

    def is_published(self, folder: Path) -> bool:
        return self.filesystem.exists(f"{self.location(folder)}/{MANIFEST}")

    def publish(self, folder: Path) -> None:
        """Upload a finished stage folder (once: a stored folder is never overwritten), manifests last."""
        if not (folder / MANIFEST).is_file():
            raise FileNotFoundError(f"{folder} has no {MANIFEST}: only finished stages are published")
        if self.is_published(folder):
            return
        filesystem, target = self.filesystem, self.location(folder)
        files = sorted(path for path in folder.rglob("*") if path.is_file() and not _is_temporary(path, folder))
        data = [path for path in files if path.name != MANIFEST]
        # manifests after every data file, nested ones (backtest windows) first, the folder's own last
        manifests = sorted(set(files) - set(data), key=lambda path: -len(path.relative_to(folder).parts))
        for path in data + manifests:
            destination = f"{target}/{path.relative_to(folder).as_posix()}"
            filesystem.makedirs(posixpath.dirname(destination), exist_ok=True)  # a no-op on object stores
            filesystem.put_file(str(path), destination)

    def fetch(self, folder: Path) -> Path:
        """`folder` with its files: as it is when finished here, else downloaded whole from the store."""
        if (folder / MANIFEST).is_file():
            return folder
        if not self.is_published(folder):
            raise FileNotFoundError(f"stage folder {folder} is neither on this machine nor in {self.url}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            self.filesystem.get(f"{self.location(folder)}/", f"{temporary}/", recursive=True)
            if not (folder / MANIFEST).is_file():  # else a task beside this one fetched it meanwhile
                _remove_unfinished(folder)
                try:
                    os.replace(temporary, folder)
                except OSError:
                    if not (folder / MANIFEST).is_file():
                        raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return folder


def _remove_unfinished(folder: Path) -> None:
    """Clear the place of a folder about to be fetched: a link, or what an interrupted local run left."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def _is_temporary(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def configured_store() -> StageStore | None:
    """The store RECSYS_STAGE_STORE names, for the workspace RECSYS_WORKSPACE names; None without one."""
    return StageStore.from_env(Workspace.from_env().root) if os.environ.get(STORE_ENV) else None


def share(folder: Path) -> Path:
    """Publish a finished stage folder to the configured store (nothing without one); returns it."""
    if (store := configured_store()) is not None:
        store.publish(folder)
    return folder


@overload
def local(folder: Path) -> Path: ...
@overload
def local(folder: None) -> None: ...
def local(folder: Path | None) -> Path | None:
    """A stage folder this process can read: fetched from the configured store when missing here."""
    if folder is not None and (store := configured_store()) is not None:
        store.fetch(folder)
    return folder


def fetch_if_stored(path: Path) -> None:
    """Fetch `path` when it is missing here but a finished stage folder of that name is in the store."""
    store = configured_store()
    if store is None or path.exists() or not _inside(path, store.root) or not store.is_published(path):
        return
    store.fetch(path)


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(root)))
