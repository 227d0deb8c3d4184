"""A champion whose saved model is deleted or corrupt is no comparable champion: the candidate is
decided without it (the popularity floor still holds), the reason names the champion, the file and
the cause, and nothing escapes. A corrupt candidate is never mistaken for a corrupt champion."""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from recsys_models.splitting import SplitSettings
from stages.evaluate import evaluate
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from tasks.promotion import CHALLENGER, CHAMPION, DATA_END_TAG, PREVIOUS, RECIPE_TAG, PromotionGate, promote
from tests.pipeline_helpers import write_ratings

NAME = "recsys-guarded"
FAMILIES = ("popularity", "ease")  # ease beats popularity beyond noise on this data


@dataclass(frozen=True)
class Run:
    """One small run: its split, each family's training folder and evaluation."""

    split_dir: Path
    trained: dict[str, Path]
    evaluated: dict[str, Path]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("run")
    validated = root / "validate"
    validated.mkdir()
    write_ratings(validated / "ratings.parquet", n_users=150, n_items=40)
    split_dir = split(validated, root / "split", SplitSettings(protocol="temporal-global"))
    trained = {family: train(split_dir, root / "train" / family, family) for family in FAMILIES}
    evaluated = {family: evaluate(split_dir, trained[family], root / "evaluate" / family) for family in FAMILIES}
    return Run(split_dir, trained, evaluated)


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return MlflowClient()


def register(client: MlflowClient, name: str, train_dir: Path, folder: Path, **tags: str) -> tuple[str, Path]:
    """A version of `name` whose artefacts hold a copy of `train_dir`'s model as the pyfunc keeps it
    (artifacts/model/); returns the version and that model folder."""
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    shutil.copytree(train_dir / "model", folder / "artifacts" / "model")
    tags = {"dataset": "synthetic", "protocol": "temporal-global", "code_version": "c1"} | tags
    version = str(client.create_model_version(name, source=str(folder), tags=tags).version)
    return version, folder / "artifacts" / "model"


def gate(client: MlflowClient, name: str, version: str, family: str, run: Run, work: Path, candidate_train: Path):
    return promote(
        client,
        name,
        version,
        run.evaluated[family],
        run.split_dir,
        work / "promotion",
        PromotionGate(),
        work / "promotion.lock",
        run.evaluated["popularity"],
        None,
        candidate_train,
    )


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def garble(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {  # how the champion breaks -> the file and the cause the reason must name
    "garbage weights": (lambda model: garble(model / "state.npz"), "artifacts/model/state.npz", "ValueError"),
    "half-written weights": (
        lambda model: truncate(model / "state.npz"),
        "artifacts/model/state.npz",
        "BadZipFile: File is not a zip file",
    ),
    "deleted artefacts": (
        lambda model: shutil.rmtree(model.parents[1]),
        "artifacts/model/model.json",
        "FileNotFoundError: No such file or directory",
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_switch_against_an_unloadable_champion_is_decided_without_it(
    corruption: str, run: Run, client: MlflowClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    breaks, file, cause = CORRUPTIONS[corruption]
    champion, model = register(client, NAME, run.trained["popularity"], tmp_path / "v1", **{RECIPE_TAG: "popularity"})
    client.set_registered_model_alias(NAME, CHAMPION, champion)
    candidate, _ = register(client, NAME, run.trained["ease"], tmp_path / "v2", **{RECIPE_TAG: "ease"})
    breaks(model)
    with caplog.at_level(logging.WARNING, logger="tasks.promotion"):
        decision = gate(client, NAME, candidate, "ease", run, tmp_path, run.trained["ease"])
    assert decision.promoted and decision.kind == "switch"
    assert decision.reason.startswith("switch: no comparable champion (ndcg_at_10=")
    assert f"the champion v{champion} could not be loaded ({file}): {cause}" in decision.reason
    assert aliases(client, NAME) == {CHAMPION: candidate, PREVIOUS: champion, CHALLENGER: candidate}
    tags = client.get_model_version(NAME, candidate).tags
    assert tags["promotion_decision"] == "promoted" and tags["promotion_reason"] == decision.reason
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "tasks.promotion"]
    assert warning.startswith(f"{NAME}: the champion v{champion} could not be loaded ({file}): {cause}")


def test_the_floor_still_holds_without_a_champion(run: Run, client: MlflowClient, tmp_path: Path) -> None:
    champion, model = register(client, NAME, run.trained["ease"], tmp_path / "v1", **{RECIPE_TAG: "ease"})
    client.set_registered_model_alias(NAME, CHAMPION, champion)
    candidate, _ = register(client, NAME, run.trained["popularity"], tmp_path / "v2", **{RECIPE_TAG: "popularity"})
    truncate(model / "state.npz")
    decision = gate(client, NAME, candidate, "popularity", run, tmp_path, run.trained["popularity"])
    assert not decision.promoted and decision.reason.startswith("not above the popularity baseline")
    assert f"(the champion v{champion} could not be loaded (artifacts/model/state.npz): BadZipFile" in decision.reason
    assert aliases(client, NAME)[CHAMPION] == champion
    assert client.get_model_version(NAME, candidate).tags["promotion_decision"] == "kept_champion"


def newer_rows_refresh(client: MlflowClient, run: Run, tmp_path: Path) -> tuple[str, Path, str]:
    """A champion and a candidate of the same recipe under other code (judged on the newer rows):
    the champion's version, its saved model folder and the candidate's version."""
    data_end = str(pl.read_parquet(run.split_dir / "train.parquet")["timestamp"].max())
    same = {RECIPE_TAG: "ease", DATA_END_TAG: data_end}
    champion, model = register(client, NAME, run.trained["ease"], tmp_path / "v1", **same)
    client.set_registered_model_alias(NAME, CHAMPION, champion)
    candidate, _ = register(client, NAME, run.trained["ease"], tmp_path / "v2", **same | {"code_version": "c2"})
    return champion, model, candidate


def test_a_refresh_judged_on_newer_rows_goes_on_without_an_unloadable_champion(
    run: Run, client: MlflowClient, tmp_path: Path
) -> None:
    champion, model, candidate = newer_rows_refresh(client, run, tmp_path)
    garble(model / "vocabulary.npz")
    decision = gate(client, NAME, candidate, "ease", run, tmp_path, run.trained["ease"])
    assert decision.promoted and decision.reason.startswith("refresh: no comparable champion")
    assert f"the champion v{champion} could not be loaded (artifacts/model/vocabulary.npz)" in decision.reason


def test_a_corrupt_candidate_is_not_taken_for_a_corrupt_champion(
    run: Run, client: MlflowClient, tmp_path: Path
) -> None:
    champion, _, candidate = newer_rows_refresh(client, run, tmp_path)
    broken = tmp_path / "candidate-train"
    shutil.copytree(run.trained["ease"], broken)
    garble(broken / "model" / "state.npz")
    with pytest.raises(ValueError, match="pickled"):
        gate(client, NAME, candidate, "ease", run, tmp_path, broken)
    assert "promotion_decision" not in client.get_model_version(NAME, candidate).tags
    assert aliases(client, NAME)[CHAMPION] == champion


def test_only_the_registered_model_with_the_broken_champion_goes_without_it(
    run: Run, client: MlflowClient, tmp_path: Path
) -> None:
    reasons = {}
    for name, broken in (("recsys-broken", True), ("recsys-healthy", False)):
        champion, model = register(
            client, name, run.trained["popularity"], tmp_path / name / "v1", **{RECIPE_TAG: "popularity"}
        )
        client.set_registered_model_alias(name, CHAMPION, champion)
        candidate, _ = register(client, name, run.trained["ease"], tmp_path / name / "v2", **{RECIPE_TAG: "ease"})
        if broken:
            shutil.rmtree(model.parents[1])
        reasons[name] = gate(client, name, candidate, "ease", run, tmp_path / name, run.trained["ease"]).reason
    assert "could not be loaded" in reasons["recsys-broken"]
    healthy = reasons["recsys-healthy"]
    assert "vs champion" in healthy and "the champion's recipe re-fit on this run's split" in healthy
    metrics = EvalDir(run.evaluated["popularity"]).metrics()
    assert f"vs champion {metrics['ndcg_at_10']:.4f}" in healthy  # the re-fit champion scores as popularity did
