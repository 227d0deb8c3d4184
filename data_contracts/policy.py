"""The run-level policy over row-level results: a few bad rows are quarantined, a broken source fails."""

from typing import Any

from data_contracts.engine import ContractViolation

DEFAULT_MAX_QUARANTINE_SHARE = 0.01


def enforce_quarantine_share(table: str, report: dict[str, Any], rejected_rows: int, max_share: float) -> None:
    """Fail when more than `max_share` of a table's source rows were rejected or quarantined.

    The message names the table, the share, and the expectations that caught the most rows,
    so a data engineer sees what broke without reading code.
    """
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must lie in [0, 1], got {max_share}")
    source_rows = report["input_rows"] + rejected_rows
    bad_rows = report["quarantined_rows"] + rejected_rows
    if source_rows == 0 or bad_rows / source_rows <= max_share:
        return
    worst = sorted(
        (entry for entry in report["expectations"] if entry["unexpected_count"]),
        key=lambda entry: -entry["unexpected_count"],
    )[:3]
    causes = [f"{entry['unexpected_count']} rows broke {entry['name']} ({entry['reason']})" for entry in worst]
    evidence = "the quarantine files of the validate stage"
    if rejected_rows:
        causes.insert(0, f"{rejected_rows} rows could not be parsed")
        evidence += " and the rejected files of the ingest stage"
    raise ContractViolation(
        [
            f"{table}: {bad_rows} of {source_rows} rows ({bad_rows / source_rows:.1%}) are bad, above the "
            f"allowed {max_share:.1%}: this looks like a broken source, not a few bad rows. "
            + "; ".join(causes)
            + f". The offending rows are in {evidence}."
        ]
    )
