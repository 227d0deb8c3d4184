"""Validation: every input table against its contract; valid rows on, bad rows to quarantine files.

Order: items first, then tags and ratings against the valid items (a quarantined item takes its
ratings with it). Quarantine files are written before any run-level failure is raised, so a
failing run still leaves the evidence behind.
"""

import logging
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts import (
    DEFAULT_MAX_QUARANTINE_SHARE,
    ContractViolation,
    DriftBounds,
    ValidationOutcome,
    check_drift,
    enforce_quarantine_share,
    validate_items,
    validate_ratings,
    validate_tags,
)
from data_contracts.catalogue import ITEMS, TAGS
from data_contracts.data_docs import write_data_docs
from data_contracts.ratings import RATINGS
from recsys_models.datasets import RatingScale
from stages.manifest import StageRecord, read_manifest, stage

logger = logging.getLogger(__name__)


def validate(
    ingest_dir: Path,
    out_dir: Path,
    max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE,
    reference_dir: Path | None = None,
    drift_bounds: DriftBounds | None = None,
    data_docs: bool = True,
) -> Path:
    """Check the ingested tables; write valid tables, quarantine files, the report and data docs.

    `reference_dir` is the validate folder of the last successful run, for the drift check.
    Raises `ContractViolation` on a table-level break, on more than `max_quarantine_share` bad
    rows in a table, and on drift beyond `drift_bounds` when their policy is `fail`.
    """
    ingested = read_manifest(ingest_dir)
    parameters = {"max_quarantine_share": max_quarantine_share, "scale": ingested["parameters"]["scale"]}
    with stage("validate", out_dir, parameters) as record:
        record.record_inputs(sorted(ingest_dir.glob("*.parquet")))
        outcomes: dict[str, ValidationOutcome] = {}
        items = _read(ingest_dir, "items")
        if items is not None:
            outcomes["items"] = validate_items(items)
            items = outcomes["items"].valid
        tags = _read(ingest_dir, "tags")
        if tags is not None and items is not None:
            outcomes["tags"] = validate_tags(tags, items)
        ratings = pl.read_parquet(ingest_dir / "ratings.parquet")
        if ratings.height == 0 and ingested["counts"]["rejected_rows"]:
            reasons = pl.read_parquet(ingest_dir / "rejected.parquet")["reason"].unique(maintain_order=True)
            raise ContractViolation(
                [f"ratings: none of the {ingested['counts']['rejected_rows']} rows could be parsed "
                 f"({'; '.join(reasons.head(3))}); they are in {ingest_dir / 'rejected.parquet'}"]
            )
        outcomes["ratings"] = validate_ratings(ratings, items, RatingScale(**ingested["parameters"]["scale"]))

        _write_outcomes(record, outcomes)
        report: dict[str, Any] = {name: outcome.report for name, outcome in outcomes.items()}
        if reference_dir is not None and (reference_dir / "ratings.parquet").exists():
            drift = check_drift(
                outcomes["ratings"].valid, pl.read_parquet(reference_dir / "ratings.parquet"), drift_bounds or DriftBounds()
            )
            report["drift"] = {"reference": str(reference_dir), "figures": drift.figures, "breaches": drift.breaches}
            for breach in drift.breaches:
                logger.warning(breach)
        if data_docs:
            contracts = {"ratings": RATINGS, "items": ITEMS, "tags": TAGS}
            tables = [(contracts[name], o.valid, o.report["parameters"]) for name, o in outcomes.items()]
            report["data_docs"] = str(write_data_docs(tables, out_dir).relative_to(out_dir))
        record.write_json("validation_report", report)

        rejected = ingested["counts"]["rejected_rows"]
        for name, outcome in outcomes.items():
            enforce_quarantine_share(name, outcome.report, rejected if name == "ratings" else 0, max_quarantine_share)
        ratings_outcome = outcomes["ratings"]
        source_rows = ingested["counts"]["input_rows"]
        if source_rows != rejected + ratings_outcome.valid.height + ratings_outcome.quarantine.height:
            raise RuntimeError("row accounting broke: source rows != rejected + valid + quarantined")
        record.counts = {
            "source_rows": source_rows,
            "rejected_at_parse": rejected,
            "valid_rows": ratings_outcome.valid.height,
            "quarantined_rows": ratings_outcome.quarantine.height,
        } | {
            f"{name}_{kind}_rows": getattr(outcome, kind).height
            for name, outcome in outcomes.items()
            if name != "ratings"
            for kind in ("valid", "quarantine")
        }
        if "drift" in report:
            record.counts["drift"] = report["drift"]["figures"] | {"breaches": report["drift"]["breaches"]}
    return out_dir


def _read(folder: Path, table: str) -> pl.DataFrame | None:
    path = folder / f"{table}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def _write_outcomes(record: StageRecord, outcomes: dict[str, ValidationOutcome]) -> None:
    """`<table>.parquet` (valid rows) and a quarantine file per table (`quarantine.parquet` for ratings)."""
    for name, outcome in outcomes.items():
        record.write_table(name, outcome.valid)
        record.write_table("quarantine" if name == "ratings" else f"{name}_quarantine", outcome.quarantine)
