"""The progress front end: epoch events and Prefect task records feed one board, shown live on a
terminal or as plain lines; the torch trainers and ALS report once per epoch."""

import io
import logging
import threading

import pytest

from recsys_models.progress import EVENT_ATTRIBUTE, PROGRESS_LOGGER, report_epoch
from recsys_models.testing import FAST_CONFIGS, fitted
from reporting.progress import BoardHandler, ProgressBoard, format_epoch_line, progress_view, use_live_view


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(family: str, epoch: int, max_epochs: int, **metrics: float) -> dict:
    return {"family": family, "epoch": epoch, "max_epochs": max_epochs, "metrics": {"epoch": epoch, **metrics}}


def test_eta_is_the_mean_epoch_time_times_the_epochs_left() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    for epoch, now in ((1, 5.0), (2, 15.0), (3, 25.0)):
        clock.now = now
        row = board.on_epoch(event("bpr_mf", epoch, 10, train_loss=1.0 / epoch))
    assert row.eta_seconds() == pytest.approx(10.0 * 7)
    assert row.metrics == {"train_loss": pytest.approx(1 / 3)}
    assert "ETA<=1m10s" in format_epoch_line("bpr_mf", row)


def test_a_restart_at_a_lower_epoch_is_the_refit_and_keeps_the_validation_figure() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    board.on_epoch(event("biased_mf", 1, 50, train_loss=0.9, valid_rmse=0.95))
    clock.now = 4.0
    board.on_epoch(event("biased_mf", 2, 50, train_loss=0.8, valid_rmse=0.93))
    clock.now = 6.0
    row = board.on_epoch(event("biased_mf", 1, 2, train_loss=0.85))
    assert (row.phase, row.epoch, row.max_epochs) == ("refit", 1, 2)
    assert row.metrics == {"train_loss": 0.85, "valid_rmse": 0.93}
    assert row.eta_seconds() is None  # one epoch into the refit: no rate yet


def test_prefect_task_records_mark_stages_and_families() -> None:
    board = ProgressBoard()
    handler = BoardHandler(board)
    records = [
        ("split", "split-a1b", "Finished in state Completed()"),
        ("train", "train-ease", "some warning while training"),
        ("train", "train-ease", "Finished in state Completed()"),
        ("train", "train-ease", "a late line"),
        ("train", "train-als", "Finished in state Failed('boom')"),
        ("evaluate", "evaluate-ease", "Finished in state Completed()"),
    ]
    for task_name, run_name, message in records:
        handler.handle(logging.makeLogRecord({"msg": message, "task_name": task_name, "task_run_name": run_name}))
    assert board.stages == {"split": "done", "train (ease)": "done", "train (als)": "failed", "evaluate (ease)": "done"}
    assert board.families["ease"].status == "evaluated"
    assert board.families["als"].status == "train failed"


def test_plain_mode_writes_one_line_per_epoch_from_any_thread_then_detaches() -> None:
    stream = io.StringIO()

    def report_three_epochs(family: str) -> None:
        for epoch in (1, 2, 3):
            report_epoch(family, epoch, 3, {"train_loss": 0.5})

    with progress_view(live=False, stream=stream) as board:
        assert not logging.getLogger(PROGRESS_LOGGER).propagate  # the root's console would print each epoch again
        threads = [threading.Thread(target=report_three_epochs, args=(family,)) for family in ("mf", "bpr_mf")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report_epoch("mf", 4, 4, {"train_loss": 0.1})  # after the block: the view is gone
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6
    assert sum("| progress | bpr_mf fit epoch 3/3 train_loss=0.5" in line for line in lines) == 1
    assert board.families["mf"].epoch == 3
    assert not logging.getLogger(PROGRESS_LOGGER).handlers and logging.getLogger(PROGRESS_LOGGER).propagate


def test_live_mode_draws_a_table_of_families() -> None:
    stream = io.StringIO()
    with progress_view(live=True, stream=stream):
        report_epoch("bpr_mf", 2, 40, {"train_loss": 0.25, "valid_ndcg_at_10": 0.125})
    drawn = stream.getvalue()
    for text in ("family", "bpr_mf", "fit 2/40", "0.25", "ndcg_at_10 0.125"):
        assert text in drawn, text


def test_live_view_only_on_an_interactive_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_live_view(Terminal()) and not use_live_view(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not use_live_view(Terminal())


class EventCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(getattr(record, EVENT_ATTRIBUTE))  # an `extra` attribute: not on LogRecord's type


@pytest.mark.parametrize("family", ["biased_mf", "bpr_mf", "als"])
def test_trainers_report_every_epoch(family: str, parts, monkeypatch: pytest.MonkeyPatch) -> None:
    capture = EventCapture()
    logger = logging.getLogger(PROGRESS_LOGGER)
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(capture)
    try:
        model = fitted(family, parts)
    finally:
        logger.removeHandler(capture)
    epochs = [event["epoch"] for event in capture.events]
    assert {event["family"] for event in capture.events} == {family}
    if family == "als":  # no per-iteration history: one event per sweep
        assert epochs == list(range(1, FAST_CONFIGS[family]["iterations"] + 1))
    else:  # one event per history record, in order: the early-stopped fit, then the refit
        assert epochs == [record["epoch"] for record in model.history]
        fit = [record for record in model.history if "train_loss" in record]  # the refit's are renamed
        assert [event["metrics"] for event in capture.events[: len(fit)]] == fit
