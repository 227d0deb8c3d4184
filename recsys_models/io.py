"""Atomic file writes and content hashes: a killed run never leaves a half-written file."""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq


@contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success fsync and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temp.unlink(missing_ok=True)


def _write_atomically(target: Path, write: Callable[[Path], Any]) -> Path:
    with _atomic_path(target) as temp:
        write(temp)
    return target


def atomic_write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    """Write `frame` as zstd Parquet at `target`, atomically."""
    return _write_atomically(target, lambda temp: frame.write_parquet(temp, compression="zstd"))


@contextmanager
def atomic_parquet_writer(target: Path, schema: pl.Schema) -> Iterator[Callable[[pl.DataFrame], None]]:
    """Yield a function that appends a frame of `schema` to a zstd Parquet file; the file appears
    at `target`, whole, when the block ends without an error, and not at all otherwise."""
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    with _atomic_path(target) as temp, pq.ParquetWriter(temp, arrow_schema, compression="zstd") as writer:
        yield lambda frame: writer.write_table(frame.to_arrow().cast(arrow_schema))


def atomic_write_json(target: Path, payload: Any) -> Path:
    """Write `payload` as indented JSON at `target`, atomically."""
    return _write_atomically(target, lambda temp: temp.write_text(json.dumps(payload, indent=2, default=str)))


def atomic_write_bytes(target: Path, data: bytes) -> Path:
    """Write raw bytes (e.g. a serialised index) at `target`, atomically."""
    return _write_atomically(target, lambda temp: temp.write_bytes(data))


def atomic_write_npz(target: Path, **arrays: np.ndarray) -> Path:
    """Write arrays as an uncompressed .npz at `target`, atomically."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub lets **kwds fill allow_pickle

    return _write_atomically(target, write)


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def combined_sha256(paths: list[Path]) -> str:
    """One hash over several files (names and contents), independent of the order given."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()
