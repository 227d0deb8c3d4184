"""The manifest every stage folder holds: what went in, what came out, with counts and hashes."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.io import (
    atomic_parquet_writer,
    atomic_write_json,
    atomic_write_parquet,
    combined_sha256,
    file_sha256,
)

MANIFEST = "manifest.json"


@dataclass
class StageRecord:
    """Collects a stage's outputs and facts; written as `manifest.json` when the stage succeeds."""

    stage: str
    directory: Path
    inputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    def write_table(self, name: str, frame: pl.DataFrame) -> Path:
        """Write `<name>.parquet` atomically and record its rows, schema and hash."""
        path = atomic_write_parquet(frame, self.directory / f"{name}.parquet")
        self.outputs[path.name] = {
            "rows": frame.height,
            "schema": {column: str(dtype) for column, dtype in frame.schema.items()},
            "sha256": file_sha256(path),
        }
        return path

    @contextmanager
    def table_writer(self, name: str, schema: pl.Schema) -> Iterator[Callable[[pl.DataFrame], None]]:
        """`write_table` a frame at a time: yields a function that appends frames of `schema`;
        `<name>.parquet` appears atomically, and is recorded, when the block ends."""
        path, rows = self.directory / f"{name}.parquet", 0
        with atomic_parquet_writer(path, schema) as append:

            def count_and_append(frame: pl.DataFrame) -> None:
                nonlocal rows
                rows += frame.height
                append(frame)

            yield count_and_append
        self.outputs[path.name] = {
            "rows": rows,
            "schema": {column: str(dtype) for column, dtype in schema.items()},
            "sha256": file_sha256(path),
        }

    def write_json(self, name: str, payload: Any) -> Path:
        """Write `<name>.json` atomically and record its hash."""
        path = atomic_write_json(self.directory / f"{name}.json", payload)
        self.outputs[path.name] = {"sha256": file_sha256(path)}
        return path

    def record_inputs(self, paths: list[Path]) -> None:
        """Hash the input files (the content hash a cache or a lineage check keys on)."""
        self.inputs = {path.name: file_sha256(path) for path in paths}
        self.inputs["combined"] = combined_sha256(paths)


@contextmanager
def stage(name: str, directory: Path, parameters: dict[str, Any] | None = None) -> Iterator[StageRecord]:
    """Run a stage body; on success write the manifest with its timing (never on failure)."""
    directory.mkdir(parents=True, exist_ok=True)
    record = StageRecord(stage=name, directory=directory, parameters=dict(parameters or {}))
    started = time.perf_counter()
    yield record
    atomic_write_json(
        directory / MANIFEST,
        {
            "stage": record.stage,
            "finished_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.perf_counter() - started, 3),
            "parameters": record.parameters,
            "inputs": record.inputs,
            "outputs": record.outputs,
            "counts": record.counts,
        },
    )


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a finished stage; a folder without one never finished."""
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no {MANIFEST}: the stage did not finish")
    return json.loads(path.read_text())
