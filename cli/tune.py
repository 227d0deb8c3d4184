"""`recsys tune`: a resumable hyperparameter search of one family; its parameters come from a run
configuration and flags as for retrain (`cli/options.py`).

Imports of the flow, torch and the families wait until a command needs them (`recsys --help` stays fast)."""

import argparse
from typing import Any

from cli import options
from recsys_models.splitting import PROTOCOLS
from reporting.formatting import format_interval
from tasks.workspace import Workspace

TEST_COLUMNS = ("ndcg_at_10", "recall_at_10", "rmse")


def add_parser(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune",
        help="search a family's hyperparameters on the validation tail (resumable); write the best config",
        formatter_class=options.ModelDefaultsFormatter,
        epilog="examples:\n  recsys tune --family ease --dataset ml-100k --trials 20\n"
        "  recsys tune --family ease --dataset ml-100k --trials 40     # continues the same study\n"
        "  recsys retrain --dataset ml-100k --families ease --family-configs workspace/tuning/ease.yaml",
    )
    options.add_config_argument(tune)
    tune.add_argument(
        "--family", help="the family to tune (it must declare a search space); required here or in --config"
    )
    tune.add_argument("--dataset", help="as for retrain")
    tune.add_argument("--protocol", choices=PROTOCOLS, help="split protocol, as for retrain")
    tune.add_argument("--trials", type=int, help="finished trials of the study at the end")
    tune.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    tune.add_argument("--out", help="best-config file (default workspace/tuning/<family>.yaml)")
    options.add_family_configs_argument(
        tune, "--base-config", "a family-configs file whose entry for the family is trial 0 and the fixed settings"
    )
    tune.add_argument("--seed", type=int, help="seed of the sampler and of every model")
    tune.add_argument("--workers", type=int, help="trials at once")
    tune.add_argument("--no-cache", action="store_const", const=True, help="recompute ingest, validate and split")


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.runners import run_flow
    from flows.tune import tune
    from recsys_models.registry import family_class
    from recsys_models.tuning import search_space
    from reporting.console import quiet_console

    config = args.run.config
    search_space(config.family, family_class(config.family).config_type)  # no space: one line before the flow starts
    if not args.debug:
        quiet_console()
    summary = run_flow(tune, config, args.run.execution)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The search for people: each trial, the base against the best, the best's test figures."""
    objective = summary["objective"]
    header = (
        f"\nstudy {summary['study']} ({summary['journal']}): {len(summary['trials'])} trials, "
        f"{len(summary['ran_now'])} run now; objective {objective} on the validation tail"
    )
    lines = [header]
    for trial in summary["trials"]:
        value = f"{trial['value']:.4f}" if trial["value"] is not None else trial["state"].lower()
        lines.append(f"  trial {trial['number']:>3}  {value:>8}  {trial['params']}")
    best = summary["best"]
    base = summary["base_value"]
    lines.append(f"base configuration (trial 0): {objective} {base:.4f}" if base is not None else "trial 0 failed")
    lines.append(f"best (trial {best['number']}): {objective} {best['value']:.4f}  {best['params']}")
    test = summary["test_metrics"]
    shown = "  ".join(f"{name} {format_interval(test, name)}" for name in TEST_COLUMNS if name in test)
    lines.append(f"best on the test part (once, 95% intervals over users): {shown}")
    lines.append(
        f"best config: {summary['out']}  -> recsys retrain --dataset {summary['source']} "
        f"--families {summary['family']} --family-configs {summary['out']}"
    )
    lines.append(f"MLflow: experiment recsys-tune, run {summary['mlflow']['run_id']}")
    return "\n".join(lines)
