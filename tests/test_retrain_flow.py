"""The retrain flow end to end on small generated data: stage files, row accounting, MLflow, pyfunc."""

from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pytest

from recsys_models.testing import low_rank_ratings
from stages.layout import EvalDir
from stages.results import RunSummary

pytestmark = pytest.mark.flow

FAMILIES = ["popularity", "biased_mf"]
FAST = {"biased_mf": {"epochs": 4, "n_factors": 8}}


@pytest.fixture
def ratings_file(tmp_path: Path) -> Path:
    """A ratings Parquet with two rows that break the contract (rating 7, a timestamp in 2090)."""
    frame = low_rank_ratings(n_users=80, n_items=50, density=0.3).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    )
    bad = pl.DataFrame(
        {"user_id": [1, 2], "item_id": [101, 102], "rating": [7.0, 3.0], "timestamp": [1_500_000_000, 3_800_000_000]}
    )
    path = tmp_path / "ratings.parquet"
    pl.concat([frame, bad]).write_parquet(path)
    return path


def run_flow(ratings_file: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> RunSummary:
    from flows.retrain import RetrainConfig, retrain

    monkeypatch.setenv("RECSYS_WORKSPACE", str(workspace))
    # the global split (P1/P2): the parts' time order is checked below
    # (cast: the flow may return its State; called, it gives that State's RunSummary)
    return cast(
        RunSummary,
        retrain(
            RetrainConfig(dataset=str(ratings_file), families=FAMILIES, family_configs=FAST, protocol="temporal-global")
        ),
    )


def test_retrain_flow_writes_every_stage_and_registers_champions(
    prefect_server, ratings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    summary = run_flow(ratings_file, tmp_path / "ws", monkeypatch)
    run_dir = Path(summary.run_dir)
    assert summary.failed == {}
    assert set(summary.families) == {"popularity", "biased_mf"}

    for stage in ("ingest", "validate", "split", "train/popularity", "train/biased_mf", "evaluate/biased_mf"):
        assert (run_dir / stage / "manifest.json").exists(), stage
    source_rows = pl.read_parquet(ratings_file).height
    counts = summary.validation
    assert counts["source_rows"] == source_rows
    assert counts["quarantined_rows"] == 2
    assert counts["valid_rows"] + counts["quarantined_rows"] + counts["rejected_at_parse"] == source_rows
    quarantine = pl.read_parquet(run_dir / "validate" / "quarantine.parquet")
    assert sorted(quarantine["rating"].to_list()) == [3.0, 7.0]

    split = {name: pl.read_parquet(run_dir / "split" / f"{name}.parquet") for name in ("train", "valid", "test")}
    assert sum(frame.height for frame in split.values()) == counts["valid_rows"]
    # Int64 unix seconds (cast: polars types a Series' min/max as any Python scalar)
    assert cast(int, split["valid"]["timestamp"].min()) >= cast(int, split["train"]["timestamp"].max())
    assert cast(int, split["test"]["timestamp"].min()) >= cast(int, split["valid"]["timestamp"].max())

    recommendations = pl.read_parquet(run_dir / "evaluate" / "biased_mf" / "recommendations.parquet")
    assert recommendations.columns[:3] == ["user_id", "item_id", "rank"]
    assert recommendations["item_id"].is_in(split["train"]["item_id"].implode()).all()
    metrics = EvalDir(run_dir / "evaluate" / "biased_mf").metrics()
    assert 0.0 <= metrics["ndcg_at_10"] <= 1.0 and metrics["rmse"] > 0
    assert "rmse" not in EvalDir(run_dir / "evaluate" / "popularity").metrics()

    mlflow.set_tracking_uri(summary.mlflow.tracking_uri)
    client = MlflowClient()
    parent = client.get_run(summary.mlflow.run_id)
    assert parent.data.tags["protocol"] == "temporal-global"
    assert parent.data.metrics["quarantined_rows"] == 2
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {run.data.tags["family"] for run in children} == {"popularity", "biased_mf"}
    child = next(run for run in children if run.data.tags["family"] == "biased_mf")
    assert {"rmse", "mae", "ndcg_at_10", "map_at_10", "coverage_at_10", "n_eval_users", "n_eval_rows"} <= set(
        child.data.metrics
    )
    assert len(client.get_metric_history(child.info.run_id, "valid_rmse")) >= 1
    for family in ("popularity", "biased_mf"):
        assert str(client.get_model_version_by_alias(f"recsys-{family}", "champion").version) == "1"

    model = mlflow.pyfunc.load_model("models:/recsys-biased_mf@champion")
    known_user = int(split["train"]["user_id"][0])
    top = model.predict(__import__("pandas").DataFrame({"user_id": [known_user, 999_999]}), params={"k": 5})
    assert len(top) == 10
    assert top.loc[top["user_id"] == 999_999, "cold_user"].all()
    assert not top.loc[top["user_id"] == known_user, "cold_user"].any()
    seen = set(split["train"].filter(pl.col("user_id") == known_user)["item_id"].to_list())
    assert not seen & set(top.loc[top["user_id"] == known_user, "item_id"])

    second = run_flow(ratings_file, tmp_path / "ws", monkeypatch)  # nothing changed: nothing registered
    registration = second.families["biased_mf"].registration
    assert registration.version == "1" and registration.reason.startswith("unchanged: v1")
    assert len(client.search_model_versions("name='recsys-biased_mf'")) == 1
    assert str(client.get_model_version_by_alias("recsys-biased_mf", "champion").version) == "1"


def test_one_failing_family_does_not_stop_the_others(
    prefect_server, ratings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.retrain import RetrainConfig, retrain

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    broken = {"biased_mf": {"n_factorz": 8}}  # a typo in a hyperparameter fails that family only
    summary = cast(
        RunSummary, retrain(RetrainConfig(dataset=str(ratings_file), families=FAMILIES, family_configs=broken))
    )
    assert list(summary.families) == ["popularity"]
    assert "n_factorz" in summary.failed["biased_mf"]
    assert np.isfinite(summary.families["popularity"].metrics["ndcg_at_10"])
