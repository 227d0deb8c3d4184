"""Operator-probe findings (issue 19, item 9), each on small generated data: pair scoring as valid
JSON, the Prefect UI's port, registry rollback and exit codes, retries, empty and crowded plots,
and small backtest windows."""

import errno
import io
import json
import logging
import math
import pickle
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import polars as pl
import pytest

from recsys_models.interactions import Interactions
from recsys_models.popularity import Popularity
from stages.layout import EvalDir, RunDir


def _no_constants(name: str) -> None:
    raise AssertionError(f"invalid JSON constant {name}")


# a. serving: a pair with an unknown user


def test_pair_scores_are_valid_json_and_keep_cold_user(tiny_ratings: pl.DataFrame) -> None:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    from serving.pyfunc_model import RecommenderPyfunc

    served = RecommenderPyfunc()
    served.model = Popularity().fit(Interactions.from_frame(tiny_ratings))
    served.id_texts, served.exclude_seen = None, True
    answer = served.predict(None, pd.DataFrame({"user_id": [1, 999, 1], "item_id": [10, 20, 777]}))
    written = io.StringIO()
    predictions_to_json(answer, written)  # what `mlflow models serve` sends back
    rows = json.loads(written.getvalue(), parse_constant=_no_constants)["predictions"]
    assert [row["cold_user"] for row in rows] == [False, True, False]
    assert rows[1]["score"] == 4.0  # the unknown user: item 20's training count, as in the top-k answer
    assert rows[2]["score"] is None  # an unknown item has no score: null, not NaN
    assert isinstance(rows[0]["score"], float) and math.isfinite(rows[0]["score"])


# b. `recsys ui --prefect --prefect-port`


class _Started:
    """A stand-in for a started server: `wait` returns at once."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env

    @classmethod
    def recorded(cls, into: list["_Started"]):
        """A `subprocess.Popen` replacement that records each start in `into`."""

        def start(command: list[str], env: dict[str, str]) -> "_Started":
            into.append(cls(command, env))
            return into[-1]

        return start

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


@pytest.mark.parametrize("api_url", [None, "http://127.0.0.1:4200/api"], ids=["no-api-url", "api-url-4200"])
def test_prefect_ui_calls_the_port_it_was_started_on(
    api_url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings.models.root import Settings

    from cli import ui
    from cli.main import main

    started: list[_Started] = []
    monkeypatch.setattr(ui.subprocess, "Popen", _Started.recorded(started))
    monkeypatch.setattr(ui.signal, "signal", lambda *_: None)
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    if api_url is None:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
    else:
        monkeypatch.setenv("PREFECT_API_URL", api_url)
    assert main(["ui", "--prefect", "--prefect-port", "4211"]) == 0
    prefect = next(process for process in started if "prefect" in process.command)
    for name, value in prefect.env.items():
        if name.startswith("PREFECT_"):
            monkeypatch.setenv(name, value)
    settings = Settings()  # what the server process reads from that environment
    assert settings.server.ui.api_url == "http://127.0.0.1:4211/api"
    assert settings.server.api.port == 4211 and prefect.command[-2:] == ["--port", "4211"]


# c, d. `recsys models`: rollback walks back through the champions; exit codes


def _nightly_promotion(client, name: str, source: Path) -> str:
    """A new version that wins the nightly gate, with the aliases and tag `tasks.promotion.promote` sets."""
    version = str(client.create_model_version(name, source=str(source)).version)
    before = client.get_registered_model(name).aliases.get("champion")
    if before is not None:
        client.set_registered_model_alias(name, "previous_champion", before)
    client.set_registered_model_alias(name, "champion", version)
    client.set_model_version_tag(name, version, "promotion_decision", "promoted")
    return version


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with `recsys-ease` v1, v2, v3, each promoted by a nightly run (made once: a new
    SQLite store costs seconds)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    client.create_registered_model("recsys-ease")
    for _ in range(3):
        _nightly_promotion(client, "recsys-ease", folder)
    return folder / "mlflow.db"


@pytest.fixture
def registry(registry_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of `registry_file` as this test's workspace registry; its client."""
    from mlflow import MlflowClient

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    (tmp_path / "ws" / "mlflow").mkdir(parents=True)
    shutil.copy(registry_file, tmp_path / "ws" / "mlflow" / "mlflow.db")
    return MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow' / 'mlflow.db'}")


def _champion(client) -> str:
    return str(client.get_model_version_by_alias("recsys-ease", "champion").version)


def test_rollback_walks_back_through_the_champions(registry, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cli.main import main

    for expected in ("2", "1"):
        assert main(["models", "rollback", "recsys-ease"]) == 0
        assert capsys.readouterr().out.strip() == f"recsys-ease: champion back to v{expected}"
        assert _champion(registry) == expected
    assert main(["models", "rollback", "recsys-ease"]) == 2  # nothing earlier: one clear line
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no 'previous_champion' alias to roll back to: v1 is the first champion" in error
    assert _champion(registry) == "1"
    assert "previous_champion" not in registry.get_registered_model("recsys-ease").aliases

    assert main(["models", "promote", "recsys-ease", "3"]) == 0  # by hand, then a nightly win: both on record
    assert _nightly_promotion(registry, "recsys-ease", tmp_path) == "4"
    for expected in ("3", "1"):
        assert main(["models", "rollback", "recsys-ease"]) == 0
        assert _champion(registry) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "rollback", "recsys-eas"], "no registered model 'recsys-eas' (registered: recsys-ease)"),
        (["models", "promote", "recsys-eas", "1"], "no registered model 'recsys-eas' (registered: recsys-ease)"),
        (["models", "promote", "recsys-ease", "7"], "recsys-ease has no version '7' (versions: 1, 2, 3)"),
        (["models", "promote", "recsys-ease", "v2"], "recsys-ease has no version 'v2' (versions: 1, 2, 3)"),
    ],
    ids=["rollback-misspelled", "promote-misspelled", "promote-no-such-version", "promote-not-a-number"],
)
def test_a_bad_model_name_or_version_exits_2_on_one_line(
    registry, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    from cli.main import main

    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and "Model Version not found" not in error
    assert _champion(registry) == "3"


def test_models_exit_0_on_success_and_1_on_a_registry_failure(
    registry, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    from cli.main import main
    from tasks import registry_admin

    assert main(["models", "list"]) == 0
    assert main(["models", "promote", "recsys-ease", "1"]) == 0
    assert "champion v1 (previous_champion v3)" in capsys.readouterr().out

    def store_down(*_: object) -> None:
        raise MlflowException("(sqlite3.OperationalError) disk I/O error")

    monkeypatch.setattr(registry_admin, "list_models", store_down)
    assert main(["models", "list"]) == 1
    assert capsys.readouterr().err.startswith("recsys models: MlflowException: (sqlite3.OperationalError) disk I/O")


# e. retries: transient I/O only


def _locked_through_sqlalchemy() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (zipfile.BadZipFile("File is not a zip file"), False),
        (pickle.UnpicklingError("Failed to interpret file 'state.npz' as a pickle"), False),
        (OSError("Failed to interpret file 'state.npz' as a pickle"), False),  # a corrupt file: no errno
        (ValueError("cannot reshape array of size 3 into shape (4,)"), False),
        (FileNotFoundError(errno.ENOENT, "No such file", "model/state.npz"), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (OSError(errno.EIO, "Input/output error"), True),
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError("read timed out"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (_locked_through_sqlalchemy(), True),
    ],
    ids=[
        "corrupt-zip",
        "corrupt-pickle",
        "corrupt-no-errno",
        "bad-value",
        "missing-file",
        "disk-full",
        "io-error",
        "connection-reset",
        "timeout",
        "sqlite-locked",
        "sqlalchemy-locked",
    ],
)
def test_only_transient_errors_are_retried(error: Exception, transient: bool) -> None:
    from tasks.retrying import is_transient

    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "retried"),
    [(zipfile.BadZipFile("File is not a zip file"), False), (TimeoutError("slow"), True)],
    ids=["corrupt-model", "timeout"],
)
def test_score_retries_a_model_load_only_on_a_transient_error(error: Exception, retried: bool) -> None:
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import Failed, State

    from flows.score import score_task

    failed: State[Any] = Failed(data=error)  # the failed state Prefect's engine asks the condition about
    assert score_task.retry_condition_fn is not None  # set by the task's decorator
    no_task_run = cast(TaskRun, None)  # the condition reads only the state
    assert score_task.retries == 2 and score_task.retry_condition_fn(score_task, no_task_run, failed) is retried


# f. the run report: families evaluated on no user; legends of two dozen families


def _metrics_on_no_user(train: pl.DataFrame) -> dict:
    """A family's summary metrics when its test part holds only users it never saw, as summary.json keeps them."""
    from recsys_models.evaluation import evaluate_model

    model = Popularity().fit(Interactions.from_frame(train))
    unknown = pl.DataFrame({"user_id": [999], "item_id": [10], "rating": [5.0], "timestamp": [100]})
    metrics = evaluate_model(model, unknown).metrics
    assert metrics["n_eval_users"] == 0
    return json.loads(json.dumps({key: value for key, value in metrics.items() if key != "slices"}))


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every figure the plot functions save, kept for inspection."""
    from matplotlib.figure import Figure

    from reporting import plots

    figures: list[Figure] = []
    save = plots.save_figure

    def keep_and_save(figure: Figure, path: Path) -> Path:
        figures.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", keep_and_save)
    return figures


def test_report_of_a_run_that_evaluated_no_user(
    tiny_ratings: pl.DataFrame, tmp_path: Path, saved_figures: list
) -> None:
    from reporting.plots import plot_metric_comparison, plot_recall_curves
    from reporting.report import write_run_report
    from stages.results import RunSummary

    run = tmp_path / "runs" / "20260101T000000Z-abc123"
    (run / "split").mkdir(parents=True)
    tiny_ratings.write_parquet(run / "split" / "train.parquet")
    tiny_ratings.head(1).write_parquet(run / "split" / "valid.parquet")
    empty = _metrics_on_no_user(tiny_ratings)
    registration = {"registered_model": "recsys-popularity", "version": "1", "promoted": False, "reason": "few users"}
    summary = RunSummary.model_validate(
        {
            "run_id": run.name,
            "run_dir": str(run),
            "config": {},
            "failed": {},
            "validation": {"source_rows": 14, "valid_rows": 14, "quarantined_rows": 0, "rejected_at_parse": 0},
            "split": {"train_rows": 13, "valid_rows": 1, "test": {"test_rows": 1, "cold_rows": 1}},
            "families": {"popularity": {"metrics": empty, "registration": registration}},
            "mlflow": {"run_id": "abc", "tracking_uri": "sqlite:///x.db"},
        }
    )
    page = write_run_report(run, summary).read_text()  # no "Data cannot be log-scaled"
    assert "<h2>Families</h2>" in page and "<img" not in page  # nothing to draw: no plot, no blank one
    assert plot_metric_comparison({"popularity": empty}, tmp_path / "none.png") is None
    assert plot_recall_curves({"popularity": empty}, tmp_path / "none.png") is None

    scored = {"n_eval_users": 5, "ndcg_at_10": 0.2, "recall_at_10": 0.3, "recall_at_20": 0.4}
    assert plot_metric_comparison({"ease": scored, "popularity": empty}, tmp_path / "compare.png") is not None
    notes = [text.get_text().strip() for axis in saved_figures[-1].axes for text in axis.texts]
    assert notes == ["no users evaluated", "no users evaluated"]  # popularity, in the ndcg and recall panels


def _outside_the_figure_or_on_the_plot(figure) -> list[str]:
    """Each legend's problem: cut off by the figure's edge, or drawn over a plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [*figure.legends, *(axis.get_legend() for axis in figure.axes if axis.get_legend())]
    problems = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > figure.bbox.x1 + 1 or box.y1 > figure.bbox.y1 + 1:
            problems.append(f"cut off: {box} outside {figure.bbox}")
        problems += [f"over a plot: {box}" for axis in figure.axes if box.overlaps(axis.get_window_extent(renderer))]
    return problems


def test_legends_of_23_families_fit_beside_the_plots(tmp_path: Path, saved_figures: list) -> None:
    from recsys_models.registry import FAMILIES
    from reporting.plots import plot_popularity_bias, plot_recall_curves

    families = list(FAMILIES)[:23]
    curves = {name: {f"recall_at_{k}": (i + 1) * k / 2000 for k in (5, 10, 20, 50)} for i, name in enumerate(families)}
    shares = {"training interactions": np.full(10, 0.1)} | {family: np.full(10, 0.1) for family in families}
    assert plot_recall_curves(curves, tmp_path / "recall.png") is not None
    assert plot_popularity_bias(shares, tmp_path / "bias.png") is not None
    for figure, entries in zip(saved_figures, (23, 25), strict=True):
        legend = (figure.legends or [figure.axes[0].get_legend()])[0]
        assert len(legend.get_texts()) == entries
        assert _outside_the_figure_or_on_the_plot(figure) == []


# g. backtest: windows with few users; `recsys report` after a backtest


def _scored(tmp_path: Path, window: int, family: str, users: int | None) -> dict:
    """A backtest entry as the flow collects it: scored on `users` users, or not scored (None)."""
    eval_dir = None
    if users is not None:
        eval_dir = tmp_path / f"window_{window}" / family
        eval_dir.mkdir(parents=True)
        EvalDir(eval_dir).metrics_file.write_text(json.dumps({"n_eval_users": users}))
    return {"window": window, "family": family, "split_dir": tmp_path, "eval_dir": eval_dir, "status": "ok"}


def test_a_window_with_few_users_is_a_warning_and_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tasks.backtest_summary import MIN_EVAL_USERS, warn_of_few_users

    entries = [
        _scored(tmp_path, 0, "popularity", 9),
        _scored(tmp_path, 0, "ease", 11),
        _scored(tmp_path, 1, "popularity", 120),
        _scored(tmp_path, 1, "ease", 118),
        _scored(tmp_path, 2, "popularity", None),
    ]
    logger = logging.getLogger("backtest-test")
    with caplog.at_level(logging.WARNING, logger="backtest-test"):
        notes = warn_of_few_users(entries, logger)
    assert MIN_EVAL_USERS == 50 and len(notes) == 1
    assert notes[0].startswith("window 0: only 9 users evaluated (fewer than 50): its metrics are noisy")
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [("WARNING", notes[0])]


def test_report_after_a_backtest_says_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cli import ui
    from cli.main import main

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    run = tmp_path / "ws" / "runs" / "20260101T000000Z-abc123"
    (run / "backtest").mkdir(parents=True)
    table, plot = run / "backtest" / "metrics_over_time.csv", run / "backtest" / "metrics_over_time.png"
    table.write_text("window,family\n0,popularity\n")
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    note = "window 0: only 9 users evaluated (fewer than 50): its metrics are noisy"
    summary = {
        "run_id": run.name,
        "run_dir": str(run),
        "table": str(table.with_suffix(".parquet")),
        "table_csv": str(table),
        "plot": str(plot),
        "families": {"popularity": {"windows_ok": 1}},
        "failed": {},
        "notes": [note],
        "config": {"dataset": "ml-latest-small"},
        "windows": [],
        "mlflow": {"run_id": "abc", "tracking_uri": "sqlite:///x.db"},
    }
    RunDir(run).summary_file.write_text(json.dumps(summary))
    opened: list[str] = []

    def record_and_succeed(uri: str) -> bool:
        opened.append(uri)
        return True

    monkeypatch.setattr(ui.webbrowser, "open", record_and_succeed)

    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backtest run {run.name}: no HTML report")
    assert f"metric-over-time table: {table}" in out and f"metric-over-time plot:  {plot}" in out
    assert f"note: {note}" in out and opened == []
    assert main(["report", run.name, "--open"]) == 0
    assert f"opening the plot {plot}" in capsys.readouterr().out and opened == [plot.as_uri()]
