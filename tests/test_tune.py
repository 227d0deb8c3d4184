"""`recsys tune`: search spaces, the objective on the validation tail only, a study that resumes from
its journal without repeating trials, the best-config file read back by `recsys retrain`."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from recsys_models.registry import FAMILIES
from recsys_models.tuning import Choice, IntRange, NoSearchSpace, search_space, starting_point
from tests.pipeline_helpers import REPO_ROOT, write_ratings

# no space: popularity has no hyperparameter, the blending hybrids choose their blend on validation
# while they fit, stacked trains its own ranker on validation (tune their parts instead)
UNSEARCHED = {"popularity", "hybrid_weighted", "hybrid_switching", "stacked"}
SEARCHED = sorted(set(FAMILIES) - UNSEARCHED)


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ratings(tmp_path_factory.mktemp("data") / "ratings.parquet", n_users=60, n_items=40)


@pytest.fixture
def split_dir(ratings_file: Path, tmp_path: Path) -> Path:
    """ingest -> validate -> split (temporal-user) of the synthetic ratings, with the stage functions."""
    from recsys_models.datasets.sources import describe_source
    from recsys_models.splitting import SplitSettings
    from stages.ingest import ingest
    from stages.split import split
    from stages.validate import validate

    ingested = ingest(str(ratings_file), tmp_path / "ingest", None, tmp_path / "downloads", 42)
    validated = validate(ingested, tmp_path / "validate")
    feedback = describe_source(str(ratings_file)).feedback
    return split(validated, tmp_path / "split", SplitSettings(protocol="temporal-user", feedback=feedback))


@pytest.mark.parametrize("family", SEARCHED)
def test_each_space_holds_the_defaults_and_yields_valid_configs(family: str) -> None:
    config_type = FAMILIES[family].config_type
    space = search_space(family, config_type)
    defaults = starting_point(config_type(), space)
    for name, dimension in space.items():
        value = defaults[name]
        inside = (
            value in dimension.options if isinstance(dimension, Choice) else dimension.low <= value <= dimension.high
        )
        assert inside, f"{family}.{name} default {value} lies outside {dimension}"
    sampled = optuna.trial.FixedTrial(
        {name: d.high if isinstance(d, IntRange) else defaults[name] for name, d in space.items()}
    )
    from recsys_models.tuning import suggest

    config_type(**suggest(sampled, space))  # the space's corner validates as a config


def test_a_family_without_a_space_is_one_clear_error(capsys: pytest.CaptureFixture) -> None:
    from cli.main import main

    with pytest.raises(NoSearchSpace, match="popularity declares no search space"):
        search_space("popularity", FAMILIES["popularity"].config_type)
    assert main(["tune", "--family", "popularity"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "popularity declares no search space" in error[0], error


def test_the_objective_never_reads_the_test_part(split_dir: Path) -> None:
    from stages.tune import validation_objective

    before = validation_objective(split_dir, "ease", {"l2": 50.0})
    (split_dir / "test.parquet").write_bytes(b"not a parquet file: a trial that read it would fail")
    after = validation_objective(split_dir, "ease", {"l2": 50.0})
    assert 0.0 < before.value <= 1.0
    assert after.value == before.value


def test_a_sequential_family_is_judged_by_its_kept_epoch_not_a_state_that_holds_valid(split_dir: Path) -> None:
    """After fitting, SASRec scores users from train + valid sequences; judged on that state it would
    see the answers. The objective is the best per-epoch figure, measured from the training part."""
    from recsys_models.progress import listening_to_epochs
    from stages.tune import validation_objective

    figures: list[float] = []
    with listening_to_epochs(lambda family, epoch, metrics: figures.append(metrics["valid_ndcg_at_10"])):
        result = validation_objective(split_dir, "sasrec", {"epochs": 4, "patience": 4, "dim": 16, "n_blocks": 1})
    assert len(figures) == 4 and result.value == max(figures)


def test_a_rating_family_is_judged_by_validation_rmse(split_dir: Path) -> None:
    from stages.tune import validation_objective

    result = validation_objective(split_dir, "biased_mf", {"epochs": 3, "n_factors": 4})
    assert 0.0 < result.value < 5.0 and result.epochs >= 3  # an RMSE on a 1-5 scale; epochs of the fit alone


def _study_with_pruner(tmp_path: Path, maximize: bool) -> optuna.Study:
    from tasks.tune_study import open_study

    return open_study(tmp_path / "pruning.journal", "pruning", maximize, seed=0)


def _finished_trial(study: optuna.Study, curve: list[float]) -> None:
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
    study.tell(trial, curve[-1])


def test_the_pruner_stops_a_trial_below_the_median_that_has_plateaued_not_one_still_improving(
    tmp_path: Path,
) -> None:
    from tasks.pruning import STARTUP_TRIALS, WARMUP_EPOCHS, pruning_listener

    study = _study_with_pruner(tmp_path, maximize=True)
    for _ in range(STARTUP_TRIALS):
        _finished_trial(study, [0.1 * epoch for epoch in range(1, 11)])

    def epochs_run(curve: list[float]) -> int:
        listener = pruning_listener(study.ask(), "valid_ndcg_at_10")
        for epoch, value in enumerate(curve, start=1):
            try:
                listener("ease", epoch, {"epoch": epoch, "valid_ndcg_at_10": value})
            except Exception:
                return epoch
        return len(curve)

    flat = epochs_run([0.05] * 10)
    assert WARMUP_EPOCHS <= flat < 10  # below the median from the start, stopped once past warm-up and flat
    slow_but_improving = epochs_run([0.01 * epoch for epoch in range(1, 11)])
    assert slow_but_improving == 10  # below the median every epoch, never plateaued: not pruned


def test_a_poor_trial_is_pruned_inside_its_fit_and_keeps_its_last_figure(split_dir: Path, tmp_path: Path) -> None:
    """A real epoch loop reports to the trial; a configuration far behind the earlier trials stops early."""
    from tasks.tune_tasks import trial_task

    study = _study_with_pruner(tmp_path, maximize=False)
    for _ in range(4):
        _finished_trial(study, [0.5] * 30)  # earlier trials: validation RMSE 0.5, out of this data's reach
    trial = study.ask()
    config = {"epochs": 30, "patience": 30, "n_factors": 4, "learning_rate": 0.05}  # converges, then overfits
    result = trial_task.fn(split_dir, "biased_mf", config, 42, trial.number, trial=trial, objective="valid_rmse")
    assert result.pruned and result.epochs < 30
    assert result.value == trial.storage.get_trial(trial._trial_id).intermediate_values[result.epochs] > 0.5
    unpruned = trial_task.fn(split_dir, "biased_mf", config | {"epochs": 5}, 42, 99)
    assert not unpruned.pruned and unpruned.epochs == 5


def run_tune(ratings_file: Path, trials: int, out: Path, **options: Any) -> dict:
    from flows.tune import TuneConfig, tune

    return tune(TuneConfig(family="ease", dataset=str(ratings_file), trials=trials, out=str(out), **options))


def test_a_search_resumes_from_its_journal_and_its_file_feeds_retrain(
    prefect_server, ratings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from cli.main import _parser
    from flows.retrain import RetrainConfig
    from recsys_models.ease import EASEConfig
    from tasks.tune_tracking import EXPERIMENT

    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    out = tmp_path / "tuned.yaml"
    first = run_tune(ratings_file, 2, out)
    assert [trial["number"] for trial in first["trials"]] == [0, 1]
    assert first["trials"][0]["params"] == {"l2": EASEConfig().l2, "values": EASEConfig().values}  # trial 0: defaults
    assert first["base_value"] == first["trials"][0]["value"]

    second = run_tune(ratings_file, 4, out)
    assert second["study"] == first["study"] and second["journal"] == first["journal"]
    assert [trial["number"] for trial in second["trials"]] == [0, 1, 2, 3]
    assert second["ran_now"] == [2, 3]  # the first two were not run again ...
    assert second["trials"][:2] == first["trials"]  # ... and are unchanged
    best = second["best"]
    assert all(best["value"] >= trial["value"] for trial in second["trials"] if trial["value"] is not None)
    assert best["value"] >= second["base_value"]  # never worse than the defaults
    assert math.isfinite(second["test_metrics"]["ndcg_at_10"]) and "ndcg_at_10_ci_low" in second["test_metrics"]

    # the best-config file, read by `recsys retrain --family-configs`
    args = _parser().parse_args(["retrain", "--families", "ease", "--family-configs", str(out)])
    assert args.family_configs == {"ease": second["best_config"]} == {"ease": best["params"]}
    assert RetrainConfig(families=["ease"], family_configs=args.family_configs).family_configs["ease"] == best["params"]

    # MLflow: a parent run per search, one child run per trial of the study
    client = MlflowClient(second["mlflow"]["tracking_uri"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None  # the flow logged its runs there
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.study = '{second['study']}'")
    children = sorted(int(run.data.tags["trial_number"]) for run in runs if "trial_number" in run.data.tags)
    assert children == [0, 1, 2, 3]
    parent = client.get_run(second["mlflow"]["run_id"])
    assert parent.data.params["family"] == "ease" and parent.data.metrics["best_value"] == best["value"]
    assert "search/search.png" in {artifact.path for artifact in client.list_artifacts(parent.info.run_id, "search")}


def test_a_bad_family_configs_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cli.main import _parser

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"ease": {"l2": 10.0, "lambda": 3}}))
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["retrain", "--family-configs", str(bad)])
    assert exit_info.value.code == 2 and "lambda" in capsys.readouterr().err


def test_a_killed_search_resumes_without_repeating_finished_trials(
    prefect_server, ratings_file: Path, tmp_path: Path
) -> None:
    """SIGKILL the `recsys tune` process after its first finished trial; the rerun ends with the
    trials asked for, the finished ones kept as they were."""
    from prefect.settings import PREFECT_API_URL

    from tasks.tune_study import finished

    env = os.environ | {"RECSYS_WORKSPACE": str(tmp_path / "ws"), "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    def command(trials: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cli.main",
            "--plain",
            "tune",
            "--family",
            "ease",
            "--dataset",
            str(ratings_file),
            "--trials",
            str(trials),
            "--workers",
            "1",
            "--out",
            str(tmp_path / "tuned.yaml"),
        ]

    process = subprocess.Popen(
        command(200),
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    killed: list[optuna.trial.FrozenTrial] = []
    while time.monotonic() < deadline and process.poll() is None and not killed:
        time.sleep(0.2)
        killed = finished(_study(tmp_path / "ws")) if _journals(tmp_path / "ws") else []
    os.killpg(process.pid, signal.SIGKILL)  # the command and anything it started
    process.wait()
    killed = finished(_study(tmp_path / "ws"))
    assert killed and killed[0].number == 0, "no trial finished before the deadline"

    rerun = subprocess.run(
        command(len(killed) + 2), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = finished(_study(tmp_path / "ws"))
    assert len(resumed) == len(killed) + 2
    assert [(t.number, t.params, t.value) for t in resumed[: len(killed)]] == [
        (t.number, t.params, t.value) for t in killed
    ]


def _journals(workspace: Path) -> list[Path]:
    return list((workspace / "tuning").glob("*.journal"))


def _study(workspace: Path) -> optuna.Study:
    """The one study of the workspace's one journal."""
    from optuna.storages.journal import JournalFileBackend

    (journal,) = _journals(workspace)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_the_search_plot_shows_pruned_trials_and_importances(tmp_path: Path) -> None:
    from PIL import Image

    from reporting.tuning_plot import plot_search

    values, pruned = [(0, 0.10), (1, 0.12), (3, 0.11)], [(2, 0.02)]
    assert plot_search([], "valid_ndcg_at_10", True, tmp_path / "none.png") is None
    alone = plot_search(values, "valid_ndcg_at_10", True, tmp_path / "alone.png", pruned)
    beside = plot_search(values, "valid_ndcg_at_10", True, tmp_path / "beside.png", pruned, {"l2": 0.8, "k": 0.2})
    assert alone is not None and beside is not None
    assert Image.open(beside).width > Image.open(alone).width  # the importances panel is drawn beside
