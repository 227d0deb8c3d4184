"""What third-party loggers may print on the terminal: no tracebacks, no quoted files.

An expected failure reaches the person as the `recsys` command's one line (`--debug` shows the
traceback); Prefect's own log of it keeps its traceback in the Prefect UI (its API handler is
left alone), and any message is cut to `MAX_MESSAGE_CHARS` so a bad data file is never echoed.
"""

import logging

MAX_MESSAGE_CHARS = 300


class ConsoleFilter(logging.Filter):
    """Drops records that carry a traceback; cuts long messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            return False
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            record.msg, record.args = message[: MAX_MESSAGE_CHARS - 1] + "…", ()
        return True


def quiet_console() -> None:
    """Set up Prefect's logging when it is not yet, then put `ConsoleFilter` on every terminal
    handler of the root and Prefect loggers (once)."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
    names = [name for name in logging.root.manager.loggerDict if name.startswith("prefect")]
    for logger in [logging.getLogger(), *(logging.getLogger(name) for name in names)]:
        for handler in logger.handlers:
            is_terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_terminal and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
                handler.addFilter(ConsoleFilter())
