"""Test-only families and data for the orchestration tests (resume, failure isolation, Dask), and
the checkout's root (`REPO_ROOT`) for tests that read its files or run commands in it.

`register_test_families` adds them to the registry in a process (the flow looks families up there);
tests undo it with `monkeypatch`, subprocesses simply exit.
"""

import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.interactions import Interactions
from recsys_models.popularity import Popularity
from recsys_models.testing import low_rank_ratings

REPO_ROOT = Path(__file__).resolve().parents[1]
BLOCK_ENV = "RECSYS_TEST_BLOCK_FIT"  # a marker file path: the blocking family writes it, then hangs


class BlockingPopularity(Popularity):
    """Popularity that, when BLOCK_ENV names a file, writes it and then hangs in `fit` (to be killed)."""

    family = "blocking_popularity"

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        marker = os.environ.get(BLOCK_ENV)
        if marker:
            Path(marker).write_text("fitting")
            time.sleep(600)
        super()._fit(train, valid, item_features)


class OutOfMemory(Popularity):
    """A family whose `fit` runs out of memory, as a too-large model would."""

    family = "out_of_memory"

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        raise MemoryError("cannot allocate 512 GiB for the item-item matrix")


TEST_FAMILIES = (BlockingPopularity, OutOfMemory)


def register_test_families(families: dict) -> None:
    """Add the test families to a registry dict (the real one: `recsys_models.registry.FAMILIES`)."""
    for cls in TEST_FAMILIES:
        families[cls.family] = cls


def write_ratings(path: Path, n_users: int = 60, n_items: int = 40, seed: int = 0) -> Path:
    """A small valid ratings Parquet (planted low-rank structure, timestamps after 2017)."""
    frame = low_rank_ratings(n_users=n_users, n_items=n_items, density=0.3, seed=seed).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    )
    frame.write_parquet(path)
    return path
