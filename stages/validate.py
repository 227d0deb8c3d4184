"""Validation: every input table against its contract; valid rows on, bad rows to quarantine files.

Order: items first, then tags and ratings against the valid items (a quarantined item takes its
ratings with it). Ratings are validated in batches read from a lazy scan of the ingested file and
written as they go (`data_contracts.ratings.validate_ratings_file`); drift and data docs read the
written table back as a scan. Quarantine files are written before any run-level failure is
raised, so a failing run still leaves the evidence behind. Every table's source rows are
accounted for (rejected at ingestion, counted in source lines, + valid + quarantined), and its
share of bad rows is judged on all of them.

After validation, repeated (user, item) rows combine once, by the source's `repeats` rule
(`recsys_models.aggregation`), into `interactions.parquet`, the table the split reads: one row per
pair, or, where seen items may be recommended again (`exclude_seen: false`), one row per pair and
time, so that repeat consumption keeps its events. The id table of the source passes through.
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
    validate_tags,
)
from data_contracts.catalogue import ITEMS, TAGS
from data_contracts.data_docs import write_data_docs
from data_contracts.engine import FAILED_EXPECTATIONS, TableContract
from data_contracts.ratings import RATINGS, validate_ratings_file
from recsys_models.aggregation import combine_repeats
from recsys_models.datasets import RatingScale
from recsys_models.datasets.spec import Feedback
from stages.ingest import ID_TABLE, REJECTED_TABLES
from stages.layout import DATA_DOCS, VALIDATION_REPORT
from stages.manifest import StageRecord, read_manifest, stage

INTERACTIONS = "interactions"  # the validated ratings with repeats combined: what the split reads

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
    source = ingested["parameters"]
    parameters = {
        "max_quarantine_share": max_quarantine_share,
        "scale": source["scale"],
        "feedback": source["feedback"],
    }
    with stage("validate", out_dir, parameters) as record:
        record.record_inputs(sorted(ingest_dir.glob("*.parquet")))
        outcomes: dict[str, ValidationOutcome] = {}
        items = _read(ingest_dir, "items")
        if items is not None:
            _require_parsed("items", items.height, ingested["counts"], ingest_dir)
            outcomes["items"] = validate_items(items)
            items = outcomes["items"].valid
        tags = _read(ingest_dir, "tags")
        if tags is not None and items is not None:
            _require_parsed("tags", tags.height, ingested["counts"], ingest_dir)
            outcomes["tags"] = validate_tags(tags, items)
        _write_outcomes(record, outcomes)
        table_reports = {name: outcome.report for name, outcome in outcomes.items()}
        table_reports["ratings"] = _validate_ratings(record, ingest_dir, ingested, items)
        report: dict[str, Any] = dict(table_reports)
        valid_ratings = pl.scan_parquet(out_dir / "ratings.parquet")
        feedback = Feedback(**source["feedback"])
        interactions = combine_repeats(valid_ratings, feedback.repeats, per_time=not feedback.exclude_seen)
        record.write_table(INTERACTIONS, interactions.collect(engine="streaming"))
        if (ingest_dir / f"{ID_TABLE}.parquet").exists():
            record.write_table(ID_TABLE, pl.read_parquet(ingest_dir / f"{ID_TABLE}.parquet"))

        if reference_dir is not None and (reference_dir / "ratings.parquet").exists():
            reference = pl.scan_parquet(reference_dir / "ratings.parquet")
            drift = check_drift(valid_ratings, reference, drift_bounds or DriftBounds())
            report["drift"] = {"reference": str(reference_dir), "figures": drift.figures, "breaches": drift.breaches}
            for breach in drift.breaches:
                logger.warning(breach)
        if data_docs:
            contracts = {"ratings": RATINGS, "items": ITEMS, "tags": TAGS}
            tables: list[tuple[TableContract, pl.DataFrame | pl.LazyFrame, dict[str, Any]]] = [
                (contracts[name], o.valid, o.report["parameters"]) for name, o in outcomes.items()
            ]
            tables.append((RATINGS, valid_ratings, table_reports["ratings"]["parameters"]))
            report["data_docs"] = str(write_data_docs(tables, out_dir / DATA_DOCS).relative_to(out_dir))
        record.write_json(VALIDATION_REPORT, report)

        parse_counts = {name: _parse_counts(name, ingested["counts"]) for name in table_reports}
        for name, table_report in table_reports.items():
            source_rows, rejected = parse_counts[name]
            enforce_quarantine_share(name, table_report, rejected, max_quarantine_share)
            if source_rows != rejected + table_report["valid_rows"] + table_report["quarantined_rows"]:
                raise RuntimeError(f"{name}: row accounting broke: source rows != rejected + valid + quarantined")
        ratings_report = table_reports["ratings"]
        record.counts = {
            "source_rows": parse_counts["ratings"][0],
            "rejected_at_parse": parse_counts["ratings"][1],
            "valid_rows": ratings_report["valid_rows"],
            "quarantined_rows": ratings_report["quarantined_rows"],
            "interaction_rows": record.outputs[f"{INTERACTIONS}.parquet"]["rows"],
        } | _side_table_counts(outcomes, parse_counts)
        if "drift" in report:
            record.counts["drift"] = report["drift"]["figures"] | {"breaches": report["drift"]["breaches"]}
    return out_dir


def _validate_ratings(
    record: StageRecord, ingest_dir: Path, ingested: dict[str, Any], items: pl.DataFrame | None
) -> dict[str, Any]:
    """Validate the ingested ratings batch by batch into `ratings.parquet` and `quarantine.parquet`
    (written as they go, so memory follows the batch size); return the report."""
    path = ingest_dir / "ratings.parquet"
    _require_parsed("ratings", pl.scan_parquet(path).select(pl.len()).collect().item(), ingested["counts"], ingest_dir)
    schema = pl.scan_parquet(path).collect_schema()
    quarantine_schema = pl.Schema({**schema, FAILED_EXPECTATIONS: pl.List(pl.String)})
    source = ingested["parameters"]
    scale = RatingScale(**source["scale"]) if source["scale"] is not None else None
    with (
        record.table_writer("ratings", schema) as write_valid,
        record.table_writer("quarantine", quarantine_schema) as write_quarantine,
    ):

        def write(valid: pl.DataFrame, quarantine: pl.DataFrame) -> None:
            write_valid(valid)
            write_quarantine(quarantine)

        return validate_ratings_file(
            path, items, scale, write, timestamp_min=source["timestamp_min"], known_events=source["events"]
        )


def _parse_counts(table: str, counts: dict[str, Any]) -> tuple[int, int]:
    """(source rows, rows rejected at parse) of an ingested table, from the ingest manifest's counts."""
    if table == "ratings":
        return counts["input_rows"], counts["rejected_rows"]
    return counts[f"{table}_source_rows"], counts[f"{table}_rejected_rows"]


def _side_table_counts(
    outcomes: dict[str, ValidationOutcome], parse_counts: dict[str, tuple[int, int]]
) -> dict[str, int]:
    """`<table>_source_rows`, `_rejected_rows`, `_valid_rows` and `_quarantine_rows` of the side tables."""
    counts: dict[str, int] = {}
    for name, outcome in outcomes.items():
        source_rows, rejected = parse_counts[name]
        counts |= {
            f"{name}_source_rows": source_rows,
            f"{name}_rejected_rows": rejected,
            f"{name}_valid_rows": outcome.valid.height,
            f"{name}_quarantine_rows": outcome.quarantine.height,
        }
    return counts


def _require_parsed(table: str, parsed_rows: int, counts: dict[str, Any], ingest_dir: Path) -> None:
    """Stop on one line when none of a table's source rows could be parsed, with the first reasons."""
    rejected = _parse_counts(table, counts)[1]
    if parsed_rows or not rejected:
        return
    path = ingest_dir / f"{REJECTED_TABLES[table]}.parquet"
    reasons = pl.read_parquet(path)["reason"].unique(maintain_order=True)
    raise ContractViolation(
        [f"{table}: none of the {rejected} rows could be parsed ({'; '.join(reasons.head(3))}); they are in {path}"]
    )


def _read(folder: Path, table: str) -> pl.DataFrame | None:
    path = folder / f"{table}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def _write_outcomes(record: StageRecord, outcomes: dict[str, ValidationOutcome]) -> None:
    """`<table>.parquet` (valid rows) and a quarantine file per table (`quarantine.parquet` for ratings)."""
    for name, outcome in outcomes.items():
        record.write_table(name, outcome.valid)
        record.write_table("quarantine" if name == "ratings" else f"{name}_quarantine", outcome.quarantine)
