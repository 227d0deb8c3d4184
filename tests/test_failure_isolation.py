"""Failure isolation: families that raise (bad hyperparameters, NaN loss, out of memory) are reported with
their error, the others are evaluated and registered, and the run ends in the state "Partly failed"."""

from pathlib import Path
from typing import cast

import pytest
from prefect.states import Completed, Failed, State

from stages.results import RunSummary
from tasks.stage_tasks import _is_io_error
from tests.pipeline_helpers import TEST_FAMILIES, write_ratings


@pytest.mark.parametrize(
    ("error", "retried"),
    [(OSError("connection reset"), True), (TimeoutError("read timed out"), True), (ValueError("bad rating"), False)],
)
def test_only_io_errors_are_retried(error: Exception, retried: bool) -> None:
    assert _is_io_error(None, None, Failed(data=error)) is retried


def test_a_finished_task_is_not_retried() -> None:
    assert _is_io_error(None, None, Completed(data=1)) is False


@pytest.mark.flow
def test_failing_families_are_reported_and_the_others_registered(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from flows.retrain import RetrainConfig, retrain
    from recsys_models.registry import FAMILIES as REGISTRY
    from tasks.run_summary import PARTLY_FAILED

    for cls in TEST_FAMILIES:
        monkeypatch.setitem(REGISTRY, cls.family, cls)
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    config = RetrainConfig(
        dataset=str(write_ratings(tmp_path / "ratings.parquet")),
        families=["popularity", "biased_mf", "bias", "out_of_memory"],
        family_configs={
            "biased_mf": {"learning_rate": 1e30, "epochs": 3},  # diverges: NaN loss
            "bias": {"user_dampingg": 5.0},  # a misspelled hyperparameter
        },
    )
    state = cast(
        State[RunSummary], retrain(config, return_state=True)
    )  # its data is typed as the flow's return: RunSummary or State

    assert state.is_completed() and state.name == PARTLY_FAILED
    summary = state.result()
    assert set(summary.failed) == {"biased_mf", "bias", "out_of_memory"}
    assert "NaN" in summary.failed["biased_mf"]
    assert "user_dampingg" in summary.failed["bias"]
    assert "cannot allocate" in summary.failed["out_of_memory"]
    assert state.message is not None  # the "Partly failed" state lists each failed family
    for family in summary.failed:
        assert family in state.message
    assert list(summary.families) == ["popularity"]
    client = MlflowClient(summary.mlflow.tracking_uri)
    assert str(client.get_model_version_by_alias("recsys-popularity", "champion").version) == "1"
    registered = {model.name for model in client.search_registered_models()}
    assert registered == {"recsys-popularity", "recsys"}


@pytest.mark.flow
def test_a_run_where_every_family_fails_raises(prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.retrain import RetrainConfig, retrain

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    config = RetrainConfig(
        dataset=str(write_ratings(tmp_path / "ratings.parquet")),
        families=["bias"],
        family_configs={"bias": {"user_dampingg": 5.0}},
    )
    state = retrain(config, return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match="every family failed"):
        state.result()
