"""Per-epoch training progress as log records, so the library stays free of any front end.

Trainers call `report_epoch` once per epoch; a front end (the CLI's live view, plain log lines
in CI) attaches a handler to `PROGRESS_LOGGER` and reads the structured event from the record's
`recsys_progress` attribute. Without a handler the records go wherever logging sends them.
"""

import logging
from typing import Any

PROGRESS_LOGGER = "recsys_models.progress"
EVENT_ATTRIBUTE = "recsys_progress"


def report_epoch(family: str, epoch: int, max_epochs: int, metrics: dict[str, float]) -> None:
    """Announce that `family` finished `epoch` (1-based) of at most `max_epochs`, with its metrics."""
    shown = " ".join(f"{name}={value:.4g}" for name, value in metrics.items() if name != "epoch")
    event: dict[str, Any] = {"family": family, "epoch": epoch, "max_epochs": max_epochs, "metrics": dict(metrics)}
    logging.getLogger(PROGRESS_LOGGER).info(
        "%s epoch %d/%d %s", family, epoch, max_epochs, shown, extra={EVENT_ATTRIBUTE: event}
    )
