"""Validation: the ratings contract splits parsed rows into valid and quarantined, and counts prove it."""

import shutil
from pathlib import Path

import polars as pl

from data_contracts import validate_ratings
from recsys_models.datasets import RatingScale
from stages.manifest import read_manifest, stage


def validate(ingest_dir: Path, out_dir: Path) -> Path:
    """Check ingested ratings against the contract; write valid rows, quarantine and the report."""
    ingested = read_manifest(ingest_dir)
    items_path = ingest_dir / "items.parquet"
    with stage("validate", out_dir) as record:
        record.record_inputs([p for p in (ingest_dir / "ratings.parquet", items_path) if p.exists()])
        ratings = pl.read_parquet(ingest_dir / "ratings.parquet")
        items = pl.read_parquet(items_path) if items_path.exists() else None
        outcome = validate_ratings(ratings, items, RatingScale(**ingested["parameters"]["scale"]))
        record.write_table("ratings", outcome.valid)
        record.write_table("quarantine", outcome.quarantine)
        record.write_json("validation_report", outcome.report)
        for name in ("items", "tags"):
            if (ingest_dir / f"{name}.parquet").exists():
                shutil.copyfile(ingest_dir / f"{name}.parquet", out_dir / f"{name}.parquet")
        source_rows = ingested["counts"]["input_rows"]
        rejected = ingested["counts"]["rejected_rows"]
        if source_rows != rejected + outcome.valid.height + outcome.quarantine.height:
            raise RuntimeError("row accounting broke: source rows != rejected + valid + quarantined")
        record.parameters = {"scale": ingested["parameters"]["scale"]}
        record.counts = {
            "source_rows": source_rows,
            "rejected_at_parse": rejected,
            "valid_rows": outcome.valid.height,
            "quarantined_rows": outcome.quarantine.height,
        }
    return out_dir
