"""What third-party loggers and warnings may print on the terminal: no tracebacks, no quoted
files, none of the warnings known to be harmless here.

An expected failure reaches the person as the `recsys` command's one line (`--debug` shows the
traceback); Prefect's own log of it keeps its traceback in the Prefect UI (its API handler is
left alone), and any message is cut to `MAX_MESSAGE_CHARS` so a bad data file is never echoed.
"""

import logging
import warnings
from contextlib import AbstractContextManager
from typing import Any

MAX_MESSAGE_CHARS = 300
# Known and harmless: the pyfunc's predict is unannotated on purpose (serving/pyfunc_model.py);
# MLflow resets warning filters around its check, so only the display can drop it.
HARMLESS_WARNINGS = ("Add type hints to the `predict` method",)


class ConsoleFilter(logging.Filter):
    """Drops records that carry a traceback; cuts long messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            return False
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            record.msg, record.args = message[: MAX_MESSAGE_CHARS - 1] + "…", ()
        return True


def _without_harmless(show: Any) -> Any:
    def showwarning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        if not any(text in str(message) for text in HARMLESS_WARNINGS):
            show(message, *args, **kwargs)

    showwarning.quiet = True  # type: ignore[attr-defined]
    return showwarning


def quiet_console() -> None:
    """Set up Prefect's logging when it is not yet, then put `ConsoleFilter` on every terminal
    handler of the root and Prefect loggers, and drop `HARMLESS_WARNINGS` from display (once)."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
    names = [name for name in logging.root.manager.loggerDict if name.startswith("prefect")]
    for logger in [logging.getLogger(), *(logging.getLogger(name) for name in names)]:
        for handler in logger.handlers:
            is_terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_terminal and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
                handler.addFilter(ConsoleFilter())
    if not getattr(warnings.showwarning, "quiet", False):
        warnings.showwarning = _without_harmless(warnings.showwarning)


def quiet_registration() -> AbstractContextManager[object]:
    """No "Successfully registered model" / "Created version" lines on the terminal: MLflow prints
    them to its event stream, which this block mutes (with MLflow's own counter, so the nested
    blocks inside `log_model` do not switch it back on); its warnings still show."""
    from mlflow.utils.autologging_utils.logging_and_warnings import MlflowEventsAndWarningsBehaviorGlobally

    return MlflowEventsAndWarningsBehaviorGlobally(
        disable_event_logs=True, disable_warnings=False, reroute_warnings=False
    )
