"""The backtest flow end to end on tiny generated data: two rolling windows, the popularity family."""

import json
from pathlib import Path

import polars as pl
import pytest

from recsys_models.testing import low_rank_ratings

pytestmark = pytest.mark.flow
DAY = 86_400


@pytest.fixture(scope="module")
def prefect_server():
    """One temporary Prefect server for the module; no heartbeat wait per flow run."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=300),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture
def ratings_file(tmp_path: Path) -> Path:
    """About 500 ratings spread evenly over 20 days (one every hour)."""
    frame = low_rank_ratings(n_users=40, n_items=30, density=0.4).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    )
    path = tmp_path / "ratings.parquet"
    frame.write_parquet(path)
    return path


def test_backtest_writes_a_metric_over_time_table_and_logs_it(
    prefect_server, ratings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from flows.backtest import BacktestConfig, backtest
    from reporting.tables import format_backtest_table
    from tasks.backtest_tracking import EXPERIMENT

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    config = BacktestConfig(dataset=str(ratings_file), families=["popularity"], n_windows=2, window_days=4)
    summary = backtest(config)
    assert summary.failed == {}

    table = pl.read_parquet(summary.table)
    assert table["window"].to_list() == [0, 1] and set(table["family"]) == {"popularity"}
    assert table["status"].to_list() == ["ok", "ok"]
    assert (table["n_eval_users"] > 0).all() and table["ndcg_at_10"].is_between(0.0, 1.0).all()
    assert (table["ndcg_at_10_ci_low"] <= table["ndcg_at_10"]).all()
    assert table["cutoff"][0] < table["cutoff"][1]
    assert pl.read_csv(summary.table_csv).height == 2
    if summary.plot is not None:
        assert Path(summary.plot).stat().st_size > 0

    run_dir = Path(summary.run_dir)
    windows = [json.loads((run_dir / "split" / f"window_0{i}" / "manifest.json").read_text()) for i in (0, 1)]
    for window in windows:  # trained on everything before the cut-off; scored on the window after it
        counts = window["counts"]
        assert counts["leakage"]["global"]["passed"] and counts["valid_rows"] > 0
    assert windows[1]["parameters"]["cutoff_timestamp"] - windows[0]["parameters"]["cutoff_timestamp"] == 4 * DAY
    assert table["train_rows"][1] == table["train_rows"][0] + table["test_rows"][0]  # window 0 joins training

    mlflow.set_tracking_uri(summary.mlflow.tracking_uri)
    client = MlflowClient()
    parent = client.get_run(summary.mlflow.run_id)
    assert parent.data.tags["protocol"] == "rolling"
    artefacts = {entry.path for entry in client.list_artifacts(parent.info.run_id, "backtest")}
    assert {"backtest/metrics_over_time.parquet", "backtest/metrics_over_time.csv"} <= artefacts
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None  # the flow logged its runs there
    (child,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    history = client.get_metric_history(child.info.run_id, "ndcg_at_10")
    assert sorted(metric.step for metric in history) == [0, 1]
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "popularity.ndcg_at_10")] != []
    assert "popularity" in format_backtest_table(table)
