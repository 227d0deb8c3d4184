"""Ingestion: any supported source -> ratings, items, tags and rejected rows as Parquet.

Every source row is counted: the manifest's counts hold, per table, its source rows and how many
could not be parsed (`input_rows` and `rejected_rows` for ratings, `<table>_source_rows` and
`<table>_rejected_rows` for items and tags), and the rejected rows are kept in `REJECTED_TABLES`.
"""

from dataclasses import asdict
from pathlib import Path

from data_contracts.ratings import EARLIEST_TIMESTAMP
from recsys_models.datasets import RawDataset, load_dataset
from recsys_models.datasets.sources import MOVIELENS_FEEDBACK
from stages.manifest import StageRecord, stage

ID_TABLE = "ids"  # the text of every coded id (recsys_models.ids), when the source has any
REJECTED_TABLES = {"ratings": "rejected", "items": "rejected_items", "tags": "rejected_tags"}


def ingest(source: str, out_dir: Path, data_dir: Path | None, cache_dir: Path, seed: int = 0) -> Path:
    """Load `source` (a dataset name, a dataset spec or a ratings file) and write it to `out_dir`.

    The manifest's parameters carry what validation and later stages need to know of the source:
    its name, scale (None: implicit), feedback semantics, earliest plausible time, event types.
    """
    with stage("ingest", out_dir, {"source": source, "seed": seed}) as record:
        dataset = load_dataset(source, data_dir=data_dir, cache_dir=cache_dir, seed=seed)
        record.write_table("ratings", dataset.ratings)
        record.write_table(REJECTED_TABLES["ratings"], dataset.rejected)
        side_counts = _write_side_tables(record, dataset)
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
        } | side_counts
    return out_dir


def _write_side_tables(record: StageRecord, dataset: RawDataset) -> dict[str, int]:
    """Write the items and tags the source has, with their rejected rows; return their counts."""
    counts: dict[str, int] = {}
    for name, table in (("items", dataset.items), ("tags", dataset.tags)):
        if table is None:
            continue
        record.write_table(name, table)
        rejected = dataset.side_rejected.get(name)
        if rejected is not None:
            record.write_table(REJECTED_TABLES[name], rejected.rows)
        rejected_lines = rejected.lines if rejected is not None else 0
        counts |= {f"{name}_source_rows": table.height + rejected_lines, f"{name}_rejected_rows": rejected_lines}
    return counts
