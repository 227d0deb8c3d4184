"""Splitting: the protocol's train/test parts, plus a validation tail cut from train by the same rule."""

from pathlib import Path

import polars as pl

from recsys_models.splitting import cold_start_counts, temporal_global_split
from stages.manifest import stage

PROTOCOLS = ("temporal-global",)


def split(
    validated_dir: Path,
    out_dir: Path,
    protocol: str = "temporal-global",
    train_fraction: float = 0.8,
    valid_fraction: float = 0.1,
) -> Path:
    """Write `train.parquet`, `valid.parquet` (the last `valid_fraction` of the training part) and
    `test.parquet`. train and valid are disjoint; together they are everything before the cut-off."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; available: {', '.join(PROTOCOLS)}")
    parameters = {"protocol": protocol, "train_fraction": train_fraction, "valid_fraction": valid_fraction}
    with stage("split", out_dir, parameters) as record:
        record.record_inputs([validated_dir / "ratings.parquet"])
        ratings = pl.read_parquet(validated_dir / "ratings.parquet")
        outer = temporal_global_split(ratings, train_fraction)
        inner = temporal_global_split(outer.train, 1.0 - valid_fraction)
        record.write_table("train", inner.train)
        record.write_table("valid", inner.test)
        record.write_table("test", outer.test)
        record.parameters |= {"cutoff_timestamp": outer.details["cutoff_timestamp"]}
        record.counts = {
            "train_rows": inner.train.height,
            "valid_rows": inner.test.height,
            "test": cold_start_counts(outer.train, outer.test),
        }
    return out_dir
