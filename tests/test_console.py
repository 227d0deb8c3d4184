"""The terminal shows the `recsys` command's one line for an expected failure: Prefect's records
that carry a traceback are dropped there, long messages are cut, the UI's handler is untouched."""

import logging
import sys

from reporting.console import MAX_MESSAGE_CHARS, ConsoleFilter, quiet_console


def record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        "prefect.flow_runs", logging.ERROR, __file__, 1, message, args, sys.exc_info() if exc_info else None
    )


def test_console_filter_drops_tracebacks_and_cuts_long_messages() -> None:
    console_filter = ConsoleFilter()
    try:
        raise ValueError("boom " + "x" * 5000)
    except ValueError:
        assert not console_filter.filter(record("Encountered exception during execution", exc_info=True))
    quoted = record("a data line quoted: %s", "y" * 10_000)
    assert console_filter.filter(quoted)
    assert quoted.getMessage().startswith("a data line quoted: y") and len(quoted.getMessage()) == MAX_MESSAGE_CHARS
    short = record("Finished in state %s", "Completed()")
    assert console_filter.filter(short) and short.getMessage() == "Finished in state Completed()"


def test_quiet_console_filters_the_terminal_handler_once_and_leaves_the_ui_handler() -> None:
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    quiet_console()
    quiet_console()
    (console,) = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    assert sum(isinstance(f, ConsoleFilter) for f in console.filters) == 1
    api_handlers = [h for h in logging.getLogger("prefect.flow_runs").handlers if isinstance(h, APILogHandler)]
    assert api_handlers and not any(h.filters for h in api_handlers)  # the Prefect UI keeps everything


def test_harmless_warnings_are_not_shown_even_where_a_library_resets_the_filters() -> None:
    import warnings

    shown: list[str] = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))  # the terminal
        quiet_console()
        warnings.simplefilter("always")  # what MLflow does around its type-hint check
        warnings.warn(
            "\x1b[33mAdd type hints to the `predict` method to enable data validation", UserWarning, stacklevel=1
        )
        warnings.warn("a warning worth reading", UserWarning, stacklevel=1)
    assert shown == ["a warning worth reading"]


def test_the_metrics_table_fits_the_terminal_keeping_ndcg_and_recall() -> None:
    from reporting.tables import RANKING_COLUMNS, format_metrics_table

    metrics = {name: 0.1 for name in RANKING_COLUMNS} | {"coverage_at_10": 0.5, "n_eval_users": 610}
    by_family = {"two_tower_rerank": metrics, "popularity": metrics}
    wide = format_metrics_table(by_family, max_width=400).splitlines()
    narrow = format_metrics_table(by_family, max_width=100).splitlines()
    assert all(name in wide[0] for name in RANKING_COLUMNS)
    assert max(map(len, narrow)) <= 100 and "ndcg_at_10" in narrow[0] and "recall_at_10" in narrow[0]
    assert "mrr_at_10" not in narrow[0] and narrow[1].startswith("two_tower_rerank")
