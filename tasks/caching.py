"""Cache keys of the stage tasks: what the inputs contain, the other parameters, and the code.

Prefect's `INPUTS` policy hashes a `Path` as its string, so a changed file would be a stale hit,
and every run writes to a new folder, so the same data would never hit. Here a `Path` parameter
stands for its content: a file its SHA-256, a stage folder the SHA-256 of every file in it (its
manifest counted by stage, parameters and input hashes only, without timings). Output folders
(`out_dir`) are left out of the key. The library's source (`stages`, `recsys_models`,
`data_contracts`) is part of the key, beside the task's own source (`TASK_SOURCE`), so changed
code never reuses an old result. With a stage store (`tasks/stage_store.py`) its URL is part of the key,
and a stage folder missing here is fetched from the store before it is hashed.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy
from pydantic import BaseModel

import data_contracts
import recsys_models
import stages
from recsys_models.datasets.spec import is_spec_path, load_spec
from recsys_models.io import file_sha256
from stages.manifest import MANIFEST
from tasks.stage_store import STORE_ENV, fetch_if_stored

# Files that record when and how a stage ran, not what it produced: left out of a folder's hash.
VOLATILE = frozenset({"validation_report.json", "data_docs", "history.json"})
MANIFEST_KEYS = ("stage", "parameters", "inputs")
LIBRARY_PACKAGES = (stages, recsys_models, data_contracts)


@lru_cache(maxsize=4096)
def _file_hash(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """A file's SHA-256, computed once per (path, size, mtime, inode)."""
    return file_sha256(Path(path))


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return _file_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a stage folder: relative names and contents of its files (recursively), without
    temporary files (dot names), volatile reports, and the manifest's timings."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part in VOLATILE for part in relative.parts) or not path.is_file():
            continue
        digest.update(str(relative).encode())
        if relative == Path(MANIFEST):
            manifest = json.loads(path.read_text())
            digest.update(json.dumps({key: manifest.get(key) for key in MANIFEST_KEYS}, sort_keys=True).encode())
        else:
            digest.update(file_fingerprint(path).encode())
    return digest.hexdigest()


def fingerprint(value: Any) -> str:
    """A stable string for a task parameter; paths stand for their content."""
    if isinstance(value, Path):
        fetch_if_stored(value)  # a stage folder another machine wrote: its content, not "absent"
        if value.is_dir():
            return "folder:" + folder_fingerprint(value)
        if value.is_file():
            return "file:" + file_fingerprint(value)
        return "absent"
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), sort_keys=True)
    if is_dataclass(value) and not isinstance(value, type):
        return json.dumps(asdict(value), sort_keys=True, default=str)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(fingerprint(item) for item in value) + "]"
    return json.dumps(value, sort_keys=True, default=str)


def source_fingerprint(source: str, data_dir: Path | None) -> str:
    """What an ingestion source holds: a file's content, a dataset folder's content, else its name
    (a synthetic source is its name plus the seed; a download is checked against its checksum)."""
    if is_spec_path(source) and os.path.isfile(source):  # the spec and every file it names
        spec = load_spec(source)
        named = [Path(source), spec.path] + ([spec.items.path] if spec.items is not None else [])
        return "spec:" + ",".join(file_fingerprint(path) for path in named)
    if os.path.isfile(source):
        return "file:" + file_fingerprint(Path(source))
    if data_dir is not None and (data_dir / source).is_dir():
        return "folder:" + folder_fingerprint(data_dir / source)
    return "name:" + source


@lru_cache(maxsize=1)
def source_code_fingerprint() -> str:
    """SHA-256 over the source of the packages the stages run (Python and contract suites)."""
    digest = hashlib.sha256()
    for package in LIBRARY_PACKAGES:
        assert package.__file__ is not None  # a regular package (with __init__.py), not a namespace one
        root = Path(package.__file__).parent
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class StageContent(CachePolicy):
    """Key over every parameter but `exclude`, with paths as their content (see `fingerprint`);
    the parameter `source` (with `data_dir`) as the content it names."""

    exclude: tuple[str, ...] = field(default=("out_dir", "torch_threads"))

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        digest = hashlib.sha256(source_code_fingerprint().encode())
        digest.update(f"stage_store={os.environ.get(STORE_ENV, '')};".encode())  # a hit was published there
        for name in sorted(inputs):
            if name in self.exclude:
                continue
            if name == "source":
                value = source_fingerprint(inputs[name], inputs.get("data_dir"))
            else:
                value = fingerprint(inputs[name])
            digest.update(f"{name}={value};".encode())
        return digest.hexdigest()


STAGE_CACHE = TASK_SOURCE + StageContent()
# ingestion: the source's content, not where it was read from or downloaded to
INGEST_CACHE = TASK_SOURCE + StageContent(exclude=("out_dir", "data_dir", "cache_dir", "torch_threads"))
