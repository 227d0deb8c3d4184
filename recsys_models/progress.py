"""Per-epoch training progress as log records, so the library stays free of any front end.

Trainers call `report_epoch` once per epoch; a front end (the CLI's live view, plain log lines
in CI) attaches a handler to `PROGRESS_LOGGER` and reads the structured event from the record's
`recsys_progress` attribute. Without a handler the records go wherever logging sends them.

A caller that must act on each epoch as it ends (a hyperparameter search pruning a poor trial)
wraps the fit in `listening_to_epochs(listener)`: the listener sees every epoch reported in that
context (that thread or task) and may raise to stop training; its exception leaves `fit`.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

PROGRESS_LOGGER = "recsys_models.progress"
EVENT_ATTRIBUTE = "recsys_progress"

EpochListener = Callable[[str, int, dict[str, float]], None]
"""Called as listener(family, epoch, metrics) after each reported epoch."""

_listeners: ContextVar[tuple[EpochListener, ...]] = ContextVar("epoch_listeners", default=())


@contextmanager
def listening_to_epochs(listener: EpochListener) -> Iterator[None]:
    """Call `listener` after each epoch reported inside the `with` block (in this context only)."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


def report_epoch(family: str, epoch: int, max_epochs: int, metrics: dict[str, float]) -> None:
    """Announce that `family` finished `epoch` (1-based) of at most `max_epochs`, with its metrics."""
    shown = " ".join(f"{name}={value:.4g}" for name, value in metrics.items() if name != "epoch")
    event: dict[str, Any] = {"family": family, "epoch": epoch, "max_epochs": max_epochs, "metrics": dict(metrics)}
    logging.getLogger(PROGRESS_LOGGER).info(
        "%s epoch %d/%d %s", family, epoch, max_epochs, shown, extra={EVENT_ATTRIBUTE: event}
    )
    for listener in _listeners.get():
        listener(family, epoch, metrics)
