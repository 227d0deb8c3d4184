"""`recsys refresh` end to end on small generated data: the champions of a retrain are brought up to
newer rows (new users and items among them) without a retrain, registered and made champion."""

import json
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pytest

from recsys_models.testing import low_rank_ratings
from stages.results import RunSummary

pytestmark = pytest.mark.flow

FAMILIES = ["popularity", "biased_mf"]
FAST = {"biased_mf": {"epochs": 6, "n_factors": 8}}


def ratings(n_users: int) -> pl.DataFrame:
    return low_rank_ratings(n_users=n_users, n_items=50, density=0.3, seed=2).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    )


def test_refresh_brings_every_champion_to_the_newest_rows(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from flows.config import RefreshConfig, RetrainConfig
    from flows.refresh import refresh
    from flows.retrain import retrain

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    everything = ratings(100)
    source = tmp_path / "ratings.parquet"
    older = everything.filter(pl.col("user_id") <= 80)  # users 81.. arrive later
    older.write_parquet(source)
    # cast: the flow may return its State; called, it gives that State's RunSummary
    retrained = cast(RunSummary, retrain(RetrainConfig(dataset=str(source), families=FAMILIES, family_configs=FAST)))
    mlflow.set_tracking_uri(retrained.mlflow.tracking_uri)
    client = MlflowClient()
    champions = {
        name: client.get_model_version_by_alias(name, "champion") for name in ("recsys-popularity", "recsys-biased_mf")
    }
    assert retrained.overall is not None
    global_champion = retrained.overall.promoted  # `recsys` has a champion only if the gate gave it one

    newest = cast(int, older["timestamp"].max())  # an Int64 column
    arrived = everything.filter(pl.col("user_id") > 80)
    arrived = arrived.with_columns(pl.col("timestamp") - arrived["timestamp"].min() + newest + 3600)  # the next day
    pl.concat([older, arrived]).write_parquet(source)
    summary = refresh(RefreshConfig(dataset=str(source)))

    outcomes = {outcome["registered_model"]: outcome for outcome in summary["models"]}
    assert set(outcomes) == set(champions) | {"recsys"}
    assert (outcomes["recsys"]["status"] == "refreshed") == global_champion
    if not global_champion:
        assert outcomes["recsys"]["reason"] == "no champion to refresh"
    for name, before in champions.items():
        outcome = outcomes[name]
        assert outcome["status"] == "refreshed" and outcome["promoted"], outcome
        assert outcome["arrived_rows"] == arrived.height
        version = client.get_model_version_by_alias(name, "champion")
        # (cast: mlflow types ModelVersion.version as str, its SQL store gives an int)
        assert version.version == int(outcome["version"]) > cast(int, before.version)
        assert version.tags["refreshed_from"] == str(before.version)
        assert version.tags["protocol"] == before.tags["protocol"] and version.tags["recipe"] == before.tags["recipe"]
        assert int(version.tags["data_end"]) == cast(int, arrived["timestamp"].max()) > int(before.tags["data_end"])
        assert str(client.get_model_version_by_alias(name, "previous_champion").version) == str(before.version)
    assert outcomes["recsys-biased_mf"]["warm_started"] and not outcomes["recsys-popularity"]["warm_started"]
    manifest = json.loads((Path(summary["run_dir"]) / "serve" / "recsys-biased_mf" / "manifest.json").read_text())
    assert manifest["parameters"]["warm_start"]["from"] == f"recsys-biased_mf v{champions['recsys-biased_mf'].version}"

    served = mlflow.pyfunc.load_model("models:/recsys-biased_mf@champion")  # knows the users who arrived
    newcomer = int(arrived["user_id"][0])
    top = served.predict(pd.DataFrame({"user_id": [newcomer]}), params={"k": 5})
    assert not top["cold_user"].any()
    assert not set(top["item_id"]) & set(arrived.filter(pl.col("user_id") == newcomer)["item_id"].to_list())
    assert np.isfinite(top["score"]).all()

    again = refresh(RefreshConfig(dataset=str(source), families=["biased_mf"], register_only=True))
    assert [outcome["status"] for outcome in again["models"]] == ["up to date"]
    assert len(client.search_model_versions("name='recsys-biased_mf'")) == 2

    nightly = cast(RunSummary, retrain(RetrainConfig(dataset=str(source), families=FAMILIES, family_configs=FAST)))
    registration = nightly.families["biased_mf"].registration  # the refresh does not stand for a retrain
    assert registration.version == "3" and not registration.reason.startswith("unchanged")
    assert registration.reason.startswith("refresh")  # judged against the refreshed champion, same recipe
