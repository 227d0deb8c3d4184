"""After a retrain: the global `recsys` champion, batch scoring of every user, and the MLflow
scoring server answering for known and unknown users on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import polars as pl
import pytest

from recsys_models.testing import low_rank_ratings
from stages.results import RunSummary

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def trained_workspace(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from flows.retrain import RetrainConfig, retrain

    root = tmp_path_factory.mktemp("serving")
    ratings = root / "ratings.parquet"
    low_rank_ratings(n_users=80, n_items=50, density=0.3).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    ).write_parquet(ratings)
    with pytest.MonkeyPatch.context() as patch:  # module-scoped: the function-scoped monkeypatch cannot serve
        patch.setenv("RECSYS_WORKSPACE", str(root / "ws"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # left behind by earlier mlflow.set_tracking_uri calls
        summary = cast(  # the flow may return its State; called, it gives that State's RunSummary
            RunSummary,
            retrain(
                RetrainConfig(
                    dataset=str(ratings),
                    families=["popularity", "biased_mf"],
                    family_configs={"biased_mf": {"epochs": 3, "n_factors": 8}},
                )
            ),
        )
        split_dir = Path(summary.run_dir) / "split"
        yield {"summary": summary, "root": root, "train": pl.read_parquet(split_dir / "train.parquet")}


def test_global_model_points_at_the_best_family(trained_workspace: dict) -> None:
    from mlflow import MlflowClient

    summary = trained_workspace["summary"]
    best = max(summary.families, key=lambda f: summary.families[f].metrics["ndcg_at_10"])
    assert summary.overall is not None and summary.overall.promoted is True
    version = MlflowClient(summary.mlflow.tracking_uri).get_model_version_by_alias("recsys", "champion")
    assert version.tags["family"] == best


def test_batch_scoring_writes_every_known_user(trained_workspace: dict) -> None:
    from flows.score import ScoreConfig, batch_score

    result = batch_score(ScoreConfig(k=5, batch_size=30))
    parts = sorted(Path(result["output_dir"]).glob("part-*.parquet"))
    recommendations = pl.concat([pl.read_parquet(part) for part in parts])
    n_users = json.loads(
        (Path(trained_workspace["summary"].run_dir) / "train" / "popularity" / "manifest.json").read_text()
    )["counts"]["users"]
    assert len(parts) == -(-n_users // 30)
    assert recommendations["user_id"].n_unique() == n_users == result["counts"]["users"]
    assert recommendations.group_by("user_id").len()["len"].to_list() == [5] * n_users
    assert recommendations.columns == ["user_id", "item_id", "score", "rank"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_served_champion_answers_known_and_unknown_users(trained_workspace: dict) -> None:
    port = _free_port()
    env = os.environ | {
        "MLFLOW_TRACKING_URI": trained_workspace["summary"].mlflow.tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the server execs uvicorn
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/recsys@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stderr is not None  # stderr=PIPE
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"scoring server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        known = int(trained_workspace["train"]["user_id"][0])
        answer = _post(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_split": {"columns": ["user_id"], "data": [[known], [987654]]}, "params": {"k": 3}},
        )
        rows = answer["predictions"]
        assert len(rows) == 6
        assert {row["user_id"] for row in rows if row["cold_user"]} == {987654}
        assert [row["rank"] for row in rows if row["user_id"] == known] == [1, 2, 3]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_models_command_lists_promotes_and_rolls_back(trained_workspace: dict, capsys: pytest.CaptureFixture) -> None:
    from cli.main import main

    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "recsys-popularity" in listed and "champion=v1" in listed and "champion because:" in listed
    assert main(["models", "promote", "recsys-popularity", "1"]) == 0
    assert main(["models", "rollback", "recsys-popularity"]) == 2  # one clear line, no traceback
    assert "recsys-popularity has no 'previous_champion' alias" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no 'previous_champion'"):
        main(["--debug", "models", "rollback", "recsys-popularity"])
