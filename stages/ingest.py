"""Ingestion: any supported source -> ratings, items, tags and rejected rows as Parquet."""

from dataclasses import asdict
from pathlib import Path

from recsys_models.datasets import load_dataset
from stages.manifest import stage


def ingest(source: str, out_dir: Path, data_dir: Path | None, cache_dir: Path, seed: int = 0) -> Path:
    """Load `source` (a dataset name or a ratings file) and write it to `out_dir`."""
    with stage("ingest", out_dir, {"source": source, "seed": seed}) as record:
        dataset = load_dataset(source, data_dir=data_dir, cache_dir=cache_dir, seed=seed)
        record.write_table("ratings", dataset.ratings)
        if dataset.items is not None:
            record.write_table("items", dataset.items)
        if dataset.tags is not None:
            record.write_table("tags", dataset.tags)
        record.write_table("rejected", dataset.rejected)
        record.parameters |= {"dataset": dataset.name, "origin": dataset.source, "scale": asdict(dataset.scale)}
        record.counts = {
            "input_rows": dataset.ratings.height + dataset.rejected.height,
            "parsed_rows": dataset.ratings.height,
            "rejected_rows": dataset.rejected.height,
        }
    return out_dir
