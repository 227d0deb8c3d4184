"""The `recsys` command without a flow run: help with examples, one-line errors and exit codes,
`datasets`, `report` and `models` (promote, roll back) against a registry made here."""

import json
from pathlib import Path

import polars as pl
import pytest

from cli.main import main
from recsys_models.testing import low_rank_ratings
from stages.layout import RunDir

COMMANDS = [
    ["retrain"],
    ["backtest"],
    ["score"],
    ["models"],
    ["models", "promote"],
    ["datasets"],
    ["ui"],
    ["report"],
    ["config"],
]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
    return tmp_path / "workspace"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "example" in capsys.readouterr().out


def test_an_error_is_one_line_and_debug_shows_the_traceback(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "no-such-run"]) == 2  # a bad argument: exit 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("recsys report: ValueError: run 'no-such-run' not found")
    with pytest.raises(ValueError, match="no-such-run"):
        main(["--debug", "report", "no-such-run"])


def test_an_object_store_workspace_is_refused_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("RECSYS_WORKSPACE", "s3://bucket/recsys")
    assert main(["report"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "RECSYS_WORKSPACE='s3://bucket/recsys' is a URL; it must be a folder" in error
    assert not Path("s3:").exists()  # no local folder named after the URL


def test_an_unexpected_error_exits_1_on_one_line(
    workspace: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import ui

    def broken(*_: object) -> None:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(ui, "find_run", broken)
    assert main(["report"]) == 1
    expected = "recsys report: RuntimeError: first line; second line (--debug shows the traceback)\n"
    assert capsys.readouterr().err == expected


def test_datasets_list_says_where_each_data_set_is(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    assert main(["datasets", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert str(tmp_path / "data" / "ml-100k") in lines["ml-100k"]
    assert "absent" in lines["ml-latest-small"] and "recsys datasets fetch ml-latest-small" in lines["ml-latest-small"]


def test_datasets_validate_reports_quarantine_and_fails_a_broken_file(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = tmp_path / "ratings.csv"
    frame = low_rank_ratings(n_users=30, n_items=20).with_columns(pl.col("timestamp") + 1_500_000_000)
    bad_row = pl.DataFrame({"user_id": [1], "item_id": [101], "rating": [9.0], "timestamp": [1_500_000_000]})
    pl.concat([frame, bad_row]).write_csv(good)
    assert main(["datasets", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "passed the data contracts" in out
    assert f"ratings  {frame.height} valid, 1 quarantined" in out
    assert len(list((workspace / "validations").glob("*/validate/quarantine.parquet"))) == 1

    broken = tmp_path / "broken.csv"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).write_csv(broken)  # no rating, no timestamp
    assert main(["datasets", "validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys datasets: ") and err.count("\n") == 1


def test_report_finds_the_latest_finished_run(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    for run_id in ("20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb", "20260103T000000Z-cccccc"):
        (workspace / "runs" / run_id / "report").mkdir(parents=True)
        (workspace / "runs" / run_id / "report" / "report.html").write_text("<html></html>")
    for run_id in ("20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"):  # the newest did not finish
        RunDir(workspace / "runs" / run_id).summary_file.write_text(json.dumps({"run_id": run_id}))
    assert main(["report"]) == 0
    latest = workspace / "runs" / "20260102T000000Z-bbbbbb" / "report" / "report.html"
    assert capsys.readouterr().out.strip() == str(latest)
    assert main(["report", "20260101T000000Z-aaaaaa"]) == 0
    assert "20260101T000000Z-aaaaaa" in capsys.readouterr().out


def test_models_promote_and_roll_back(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mlflow import MlflowClient

    (workspace / "mlflow").mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow' / 'mlflow.db'}")
    client.create_registered_model("recsys-ease")
    for _ in range(2):
        client.create_model_version("recsys-ease", source=str(tmp_path))
    assert main(["models", "promote", "recsys-ease", "1"]) == 0
    assert main(["models", "promote", "recsys-ease", "2"]) == 0
    assert "champion v2 (previous_champion v1)" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "champion=v2, previous_champion=v1" in listing and "set by hand" in listing
    assert main(["models", "rollback", "recsys-ease"]) == 0
    assert capsys.readouterr().out.strip() == "recsys-ease: champion back to v1"
    assert str(client.get_model_version_by_alias("recsys-ease", "champion").version) == "1"
    assert main(["models", "promote", "recsys-ease", "7"]) == 2  # no such version: one line, exit 2
    assert capsys.readouterr().err.count("\n") == 1
