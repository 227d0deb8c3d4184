"""What a person watching a run sees: a live table of stages and per-family training (epoch,
loss, validation metric, ETA) on a terminal, plain log lines in CI or when output is piped.

Both read log records: the trainers' epoch events on `recsys_models.progress` (see
`recsys_models.progress`) and Prefect's task-run records ("Finished in state ..."), so the view
works across the flow's thread pool without touching the flow.
"""

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from recsys_models.progress import EVENT_ATTRIBUTE, PROGRESS_LOGGER

TASK_LOGGER = "prefect.task_runs"
PER_FAMILY_TASKS = ("train", "evaluate")
STATE_STYLES = {"done": "green", "failed": "bold red", "running": "yellow", "waiting": "dim"}


@dataclass
class FamilyProgress:
    """One family's training as the epoch events report it."""

    epoch: int = 0
    max_epochs: int = 0
    phase: str = "fit"
    metrics: dict[str, float] = field(default_factory=dict)
    phase_started: float | None = None  # time of the first event of this phase
    first_epoch: int = 0
    last_event: float | None = None
    status: str = "training"

    def eta_seconds(self) -> float | None:
        """Seconds left at the mean epoch time so far (an upper bound: early stopping may end sooner)."""
        if self.phase_started is None or self.last_event is None or self.epoch <= self.first_epoch:
            return None
        per_epoch = (self.last_event - self.phase_started) / (self.epoch - self.first_epoch)
        return per_epoch * max(0, self.max_epochs - self.epoch)


class ProgressBoard:
    """Thread-safe state of a run: stages in order of appearance and one row per family."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.stages: dict[str, str] = {}
        self.families: dict[str, FamilyProgress] = {}

    def on_epoch(self, event: dict[str, Any]) -> FamilyProgress:
        """Record one epoch event of `recsys_models.progress.report_epoch`."""
        now = self._clock()
        with self._lock:
            row = self.families.setdefault(event["family"], FamilyProgress())
            epoch = int(event["epoch"])
            if row.phase_started is None or epoch <= row.epoch:  # a new phase: first fit, or the refit
                row.phase = "fit" if row.phase_started is None else "refit"
                row.phase_started, row.first_epoch = now, epoch
            row.epoch, row.max_epochs, row.last_event = epoch, int(event["max_epochs"]), now
            metrics = {k: float(v) for k, v in event["metrics"].items() if k != "epoch"}
            if not any(name.startswith("valid_") for name in metrics):  # the refit: keep the last validation figure
                metrics |= {k: v for k, v in row.metrics.items() if k.startswith("valid_")}
            row.metrics = metrics
            row.status = "training"
            return row

    def on_task(self, task_name: str, task_run_name: str, state: str) -> None:
        """Record a Prefect task run reaching `state` ("running", "done" or "failed")."""
        with self._lock:
            key = task_name
            if task_name in PER_FAMILY_TASKS and task_run_name.startswith(f"{task_name}-"):
                key = f"{task_name} ({task_run_name.removeprefix(f'{task_name}-')})"
            if state == "running" and self.stages.get(key) in ("done", "failed"):
                return  # a late log line of a finished task
            if task_name in PER_FAMILY_TASKS and task_run_name.startswith(f"{task_name}-"):
                family = task_run_name.removeprefix(f"{task_name}-")
                row = self.families.setdefault(family, FamilyProgress())
                if state == "failed":
                    row.status = f"{task_name} failed"
                elif state == "done":
                    row.status = "trained, evaluating" if task_name == "train" else "evaluated"
                self.stages[f"{task_name} ({family})"] = state
            else:
                self.stages[task_name] = state

    def render(self) -> Group:
        """The live view: one line of stages, then a table of families."""
        with self._lock:
            stages = Text("stages: ")
            for name, state in self.stages.items():
                if "(" not in name:
                    stages.append(f"{name} ", style=STATE_STYLES.get(state, ""))
            for task in PER_FAMILY_TASKS:
                states = [state for name, state in self.stages.items() if name.startswith(f"{task} (")]
                if states:
                    done = sum(state == "done" for state in states)
                    failed = sum(state == "failed" for state in states)
                    style = "bold red" if failed else "green" if done == len(self.families) else "yellow"
                    label = f"{task} {done}/{len(self.families)}" + (f" ({failed} failed)" if failed else "")
                    stages.append(label + " ", style=style)
            table = Table(expand=False, show_edge=False, pad_edge=False)
            for column in ("family", "status", "epoch", "loss", "validation", "ETA"):
                table.add_column(column, justify="left" if column in ("family", "status") else "right")
            for family, row in self.families.items():
                loss = next((v for k, v in row.metrics.items() if k.endswith("loss")), None)
                valid = next(((k, v) for k, v in row.metrics.items() if k.startswith("valid_")), None)
                eta = row.eta_seconds() if row.status == "training" else None
                table.add_row(
                    family,
                    Text(
                        row.status,
                        style="green" if row.status == "evaluated" else "red" if "failed" in row.status else "yellow",
                    ),
                    f"{row.phase} {row.epoch}/{row.max_epochs}" if row.max_epochs else "-",
                    f"{loss:.4g}" if loss is not None else "-",
                    f"{valid[0].removeprefix('valid_')} {valid[1]:.4g}" if valid else "-",
                    _duration(eta),
                )
            return Group(stages, table)


def format_epoch_line(family: str, row: FamilyProgress) -> str:
    """A plain progress line: `bpr_mf fit epoch 3/50 train_loss=0.41 valid_ndcg_at_10=0.12 ETA<=40s`."""
    shown = " ".join(f"{name}={value:.4g}" for name, value in row.metrics.items())
    eta = row.eta_seconds()
    return f"{family} {row.phase} epoch {row.epoch}/{row.max_epochs} {shown}".rstrip() + (
        f" ETA<={_duration(eta)}" if eta is not None else ""
    )


class BoardHandler(logging.Handler):
    """Feeds a board from epoch events and Prefect task-run records; in plain mode also writes
    one line per epoch event to `stream`."""

    def __init__(self, board: ProgressBoard, stream: TextIO | None = None) -> None:
        super().__init__(logging.INFO)
        self.board, self.stream = board, stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = getattr(record, EVENT_ATTRIBUTE, None)
            if event is not None:
                row = self.board.on_epoch(event)
                if self.stream is not None:
                    stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
                    self.stream.write(f"{stamp} | progress | {format_epoch_line(event['family'], row)}\n")
                    self.stream.flush()
                return
            task_name, run_name = getattr(record, "task_name", None), getattr(record, "task_run_name", None)
            if task_name and run_name:
                message = record.getMessage()
                if message.startswith("Finished in state"):
                    state = "done" if "Completed" in message or "Cached" in message else "failed"
                    self.board.on_task(task_name, run_name, state)
                else:
                    self.board.on_task(task_name, run_name, "running")
        except Exception:  # a display must never break the run
            self.handleError(record)


def use_live_view(stream: TextIO) -> bool:
    """A live view on an interactive terminal; plain lines in CI, when piped, or with TERM=dumb."""
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def progress_view(live: bool | None = None, stream: TextIO | None = None) -> Iterator[ProgressBoard]:
    """Watch a run inside this block: a live table when `live` (default: `use_live_view`), else
    plain lines on `stream` (default stderr)."""
    stream = stream if stream is not None else sys.stderr
    live = use_live_view(stream) if live is None else live
    board = ProgressBoard()
    handler = BoardHandler(board, None if live else stream)
    progress_logger, task_logger = logging.getLogger(PROGRESS_LOGGER), logging.getLogger(TASK_LOGGER)
    level, propagate = progress_logger.level, progress_logger.propagate
    progress_logger.setLevel(logging.INFO)
    progress_logger.propagate = False  # the view shows each epoch once; the root's console would repeat it
    progress_logger.addHandler(handler)
    task_logger.addHandler(handler)
    try:
        if live:
            console = Console(file=stream)
            with _quiet_console_logs(), Live(get_renderable=board.render, console=console, refresh_per_second=4):
                yield board
        else:
            yield board
    finally:
        progress_logger.removeHandler(handler)
        task_logger.removeHandler(handler)
        progress_logger.setLevel(level)
        progress_logger.propagate = propagate


@contextmanager
def _quiet_console_logs(names: tuple[str, ...] = ("prefect", ""), level: int = logging.WARNING) -> Iterator[None]:
    """While the live table is drawn, console log handlers (Prefect's, the root's) show only
    warnings and errors: the table replaces the INFO lines, and stray lines would tear it."""
    handlers = [
        handler
        for name in names
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, level))
    try:
        yield
    finally:
        for handler, before in zip(handlers, levels, strict=True):
            handler.setLevel(before)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
