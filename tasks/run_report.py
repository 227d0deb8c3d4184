"""The run report at the end of a retrain: written to the run folder and logged to MLflow."""

import logging
from pathlib import Path

from reporting.report import REPORT_DIR, write_run_report
from stages.results import RunSummary
from tasks.retrying import RetryingClient

logger = logging.getLogger(__name__)


def publish_run_report(summary: RunSummary) -> RunSummary:
    """Write the run folder's `report/` (report.html and the PNG plots) and log it to the run's parent
    MLflow run under `report/`; returns the summary naming the report (None when it failed: a report
    that fails is logged, never fails the run)."""
    run_dir = Path(summary.run_dir)
    try:
        path: Path | None = write_run_report(run_dir, summary)
        RetryingClient(summary.mlflow.tracking_uri).log_artifacts(
            summary.mlflow.run_id, str(run_dir / REPORT_DIR), artifact_path=REPORT_DIR
        )
    except Exception:
        logger.exception("the run report could not be written; the run itself is unaffected")
        path = None
    return summary.model_copy(update={"report": str(path) if path is not None else None})
