"""Ingestion: any supported source -> ratings, items, tags and rejected rows as Parquet."""

from dataclasses import asdict
from pathlib import Path

from data_contracts.ratings import EARLIEST_TIMESTAMP
from recsys_models.datasets import load_dataset
from recsys_models.datasets.sources import MOVIELENS_FEEDBACK
from stages.manifest import stage

ID_TABLE = "ids"  # the text of every coded id (recsys_models.ids), when the source has any


def ingest(source: str, out_dir: Path, data_dir: Path | None, cache_dir: Path, seed: int = 0) -> Path:
    """Load `source` (a dataset name, a dataset spec or a ratings file) and write it to `out_dir`.

    The manifest's parameters carry what validation and later stages need to know of the source:
    its name, scale (None: implicit), feedback semantics, earliest plausible time, event types.
    """
    with stage("ingest", out_dir, {"source": source, "seed": seed}) as record:
        dataset = load_dataset(source, data_dir=data_dir, cache_dir=cache_dir, seed=seed)
        record.write_table("ratings", dataset.ratings)
        if dataset.items is not None:
            record.write_table("items", dataset.items)
        if dataset.tags is not None:
            record.write_table("tags", dataset.tags)
        record.write_table("rejected", dataset.rejected)
        if dataset.ids is not None and dataset.ids.height:
            record.write_table(ID_TABLE, dataset.ids)
        spec = dataset.spec
        record.parameters |= {
            "dataset": dataset.name,
            "origin": dataset.source,
            "scale": asdict(dataset.scale) if dataset.scale is not None else None,
            "feedback": (spec.feedback_settings if spec else MOVIELENS_FEEDBACK).model_dump(mode="json"),
            "timestamp_min": spec.earliest_timestamp if spec else EARLIEST_TIMESTAMP,
            "events": sorted(spec.event_weights) if spec and spec.event_weights else None,
        }
        record.counts = {
            "input_rows": dataset.ratings.height + dataset.rejected.height,
            "parsed_rows": dataset.ratings.height,
            "rejected_rows": dataset.rejected.height,
        }
    return out_dir
