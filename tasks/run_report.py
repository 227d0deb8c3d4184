"""The run report at the end of a retrain: written to the run folder and logged to MLflow."""

import logging
from pathlib import Path
from typing import Any

from reporting.report import REPORT_DIR, write_run_report
from tasks.retrying import RetryingClient

logger = logging.getLogger(__name__)


def publish_run_report(run_dir: Path, summary: dict[str, Any], tracking_uri: str) -> Path | None:
    """Write `run_dir/report/` (report.html and the PNG plots) and log the folder to the run's
    parent MLflow run under `report/`. A report that fails is logged, never fails the run."""
    try:
        path = write_run_report(run_dir, summary)
        parent = summary.get("mlflow", {}).get("run_id")
        if parent:
            RetryingClient(tracking_uri).log_artifacts(parent, str(run_dir / REPORT_DIR), artifact_path=REPORT_DIR)
        return path
    except Exception:
        logger.exception("the run report could not be written; the run itself is unaffected")
        return None
