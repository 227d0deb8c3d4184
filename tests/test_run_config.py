"""One run configuration (`cli/run_config.py`, `cli/options.py`): a YAML file checked as a whole
by the flows' own models before anything is written, flags that override single keys, `config show`."""

import argparse
from pathlib import Path
from typing import cast

import pytest
import yaml

from cli.main import _parser, main
from cli.options import FLAGS, FLOW_COMMANDS, run_config_of
from cli.run_config import WITHOUT_EXECUTION, RunConfig, RunConfigError, default_of, resolve
from data_contracts.drift import DriftBounds
from flows.config import RetrainConfig, ScoreConfig, TuneConfig
from flows.runners import Execution
from tasks.promotion_gate import PromotionGate
from tests.pipeline_helpers import REPO_ROOT

NIGHTLY = REPO_ROOT / "examples" / "nightly.yaml"
RUN_FILE = """\
dataset: ml-100k
families: [popularity, ease]
family_configs:
  ease: {l2: 500.0}
seed: 7
gate: {min_users: 50}
drift: {policy: fail}
execution: {workers: 1}
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def write(folder: Path, text: str, name: str = "run.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def resolved(argv: list[str]) -> RunConfig:
    """The effective configuration of a command line, as `recsys` resolves it before running."""
    return run_config_of(_parser().parse_args(argv))


def test_a_valid_file_gives_the_flow_its_parameters(tmp_path: Path) -> None:
    run = resolve("retrain", write(tmp_path, RUN_FILE))
    expected = RetrainConfig(
        dataset="ml-100k",
        families=["popularity", "ease"],
        family_configs={"ease": {"l2": 500.0}},
        seed=7,
        gate=PromotionGate(min_users=50),
        drift=DriftBounds(policy="fail"),
    )
    assert run.config == expected
    assert run.execution == Execution(workers=1)
    assert run.config.gate.metric == "ndcg_at_10"  # a key left out keeps its model's default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("datset: ml-100k\n", "run.yaml: datset: unknown key (did you mean 'dataset'?)"),
        (
            "family_configs:\n  ease: {l2_reg: 500}\n",
            "run.yaml: family_configs.ease.l2_reg: unknown key (did you mean 'l2'?)",
        ),
        (
            "family_configs:\n  ease: {l2: -1}\n",
            "run.yaml: family_configs.ease.l2: Input should be greater than 0 (got -1)",
        ),
        ("seed: -1\n", "run.yaml: seed: Input should be greater than or equal to 0 (got -1)"),
        ("gate: {min_user: 3}\n", "run.yaml: gate.min_user: unknown key (did you mean 'min_users'?)"),
        ("execution: {workers: two}\n", "run.yaml: execution.workers: Input should be a valid integer"),
        ("families: [eas]\n", "run.yaml: families: unknown family 'eas' (did you mean 'ease'?)"),
        ("- a list\n", "run.yaml: expected a mapping of keys to values, got list"),
        ("seed: [1\n", "run.yaml: not valid YAML"),
    ],
    ids=[
        "top-level key",
        "family hyperparameter",
        "family value",
        "bad value",
        "nested key",
        "execution",
        "family",
        "not a mapping",
        "not YAML",
    ],
)
def test_a_bad_file_is_one_line_naming_the_key_exit_2_and_nothing_written(
    text: str, expected: str, tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write(tmp_path, text)
    assert main(["retrain", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith("recsys retrain: RunConfigError: " + str(path.parent) + "/" + expected), error
    assert not workspace.exists()  # no run folder, no workspace files: rejected before anything is written


def test_a_missing_dataset_is_one_line_before_anything_is_written(
    tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write(tmp_path, "dataset: no-such-ratings.csv\n")
    assert main(["backtest", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "DataSourceError: no-such-ratings.csv: no such file" in error, error
    assert not workspace.exists()


def test_every_problem_is_on_the_one_line_with_where_it_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: -1\nexecution: {runer: dask}\n")
    with pytest.raises(RunConfigError) as error:
        resolved(["retrain", "--config", str(path), "--workers", "0"])
    assert str(error.value) == (
        f"{path}: seed: Input should be greater than or equal to 0 (got -1); "
        "execution.runer: unknown key (did you mean 'runner'?); "
        "command line: execution.workers: Input should be greater than 0 (got 0)"
    )


def test_a_flag_given_overrides_the_file_and_a_flag_left_out_keeps_it(tmp_path: Path) -> None:
    path = write(tmp_path, RUN_FILE)
    run = resolved(["retrain", "--config", str(path), "--seed", "3", "--families", "popularity", "--no-cache"])
    config = cast(RetrainConfig, run.config)  # `retrain`'s model
    assert (config.seed, config.families) == (3, ["popularity"])
    assert (config.dataset, config.gate.min_users) == ("ml-100k", 50)  # from the file
    assert run.execution == Execution(workers=1, refresh_cache=True)
    assert cast(RetrainConfig, resolved(["retrain", "--config", str(path)]).config).seed == 7


def test_a_family_configs_file_is_merged_key_by_key_over_the_run_file(tmp_path: Path) -> None:
    tuned = write(tmp_path, "ease: {l2: 6797.0}\nals: {n_factors: 32}\n", "ease.yaml")  # as `recsys tune` writes it
    run_file = write(tmp_path, "family_configs:\n  ease: {l2: 500.0, values: binary}\n")
    run = resolved(["retrain", "--config", str(run_file), "--family-configs", str(tuned)])
    assert cast(RetrainConfig, run.config).family_configs == {
        "ease": {"l2": 6797.0, "values": "binary"},
        "als": {"n_factors": 32},
    }
    tune = resolved(["tune", "--family", "ease", "--base-config", str(tuned)])
    assert tune.config == TuneConfig(family="ease", base_config={"l2": 6797.0})


def test_tune_checks_its_base_config_against_the_family(tmp_path: Path) -> None:
    path = write(tmp_path, "family: ease\nbase_config: {l3: 1}\n")
    with pytest.raises(RunConfigError, match=r"run.yaml: base_config.l3: unknown key \(did you mean 'l2'\?\)$"):
        resolve("tune", path)
    with pytest.raises(RunConfigError, match="config: family: Field required"):
        resolve("tune")


@pytest.mark.parametrize("command", FLOW_COMMANDS)
def test_config_show_prints_every_default_and_round_trips(
    command: str, tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    given = write(tmp_path, "family: ease\n" if command == "tune" else "")
    assert main(["config", "show", "--config", str(given), "--command", command]) == 0
    shown = capsys.readouterr().out
    again = resolve(command, write(tmp_path, shown, "shown.yaml"))
    keys = set(type(again.config).model_fields) | ({"execution"} if command not in WITHOUT_EXECUTION else set())
    assert set(yaml.safe_load(shown)) == keys  # every key, its default filled in
    assert again == resolve(command, given)
    assert again.to_yaml() == shown


def test_the_nightly_example_validates_and_is_what_the_deployment_runs(tmp_path: Path) -> None:
    nightly = resolve("retrain", NIGHTLY)
    assert nightly.config == RetrainConfig(protocol="temporal-user") and nightly.execution == Execution()
    assert yaml.safe_load(NIGHTLY.read_text()) == nightly.as_file()  # the nightly defaults, every key written out
    deployments = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    parameters = next(d for d in deployments if d["name"] == "nightly-retrain")["parameters"]
    as_run_file = {
        **parameters["config"],
        **({"execution": parameters["execution"]} if "execution" in parameters else {}),
    }
    assert resolve("retrain", write(tmp_path, yaml.safe_dump(as_run_file))) == nightly
    score = next(d for d in deployments if d["name"] == "nightly-batch-score")["parameters"]["config"]
    assert resolve("score", write(tmp_path, yaml.safe_dump(score))).config == ScoreConfig(**score)


def test_the_readme_example_validates(tmp_path: Path) -> None:
    section = (REPO_ROOT / "README.md").read_text().split("## Configure a run", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = cast(RetrainConfig, resolve("retrain", write(tmp_path, example)).config)  # `retrain`'s model
    assert config.family_configs["als"] == {"n_factors": 32}


def test_flags_state_no_default_of_their_own_and_help_shows_the_models() -> None:
    """A flag's default would silently win over the file; the default lives in the model, and --help reads it."""
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in FLOW_COMMANDS:
        parser = commands[command]
        flags = [action for action in parser._actions if action.dest in FLAGS]
        assert flags and all(action.default is None for action in flags), command
        formatter = parser._get_formatter()
        for action in flags:
            default = default_of(command, FLAGS[action.dest])
            shown = action.help if default in (None, False) else f"{action.help} (default {default})"
            assert formatter._get_help_string(action) == shown, (command, action.dest)
    assert default_of("retrain", ("seed",)) == 42 and default_of("tune", ("execution", "workers")) == 2
    assert default_of("tune", ("family",)) is None  # required: no default to show
