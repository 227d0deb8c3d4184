"""The `recsys` command: run the pipeline (with a live progress view), score, manage the registry,
datasets and reports, open the UIs. Errors print as one line (`--debug` shows the traceback).

The flow commands take their parameters from a run configuration (`--config FILE`) and flags
(`cli/options.py`); the whole is validated before anything is written (`cli/run_config.py`)."""

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from cli import datasets, options, tune, ui
from cli.run_config import describe_errors
from recsys_models.exceptions import RecsysError
from recsys_models.splitting import PROTOCOLS  # temporal-global = P1/P2, temporal-user = P4, leave-one-out = P3
from reporting.console import quiet_console
from reporting.summaries import backtest_lines, refresh_lines, run_summary_lines, score_lines
from tasks.retention import DEFAULT_KEEP_RUNS
from tasks.workspace import Workspace, check_writable, configure_environment

MAX_ERROR_CHARS = 500


EXAMPLES = """examples:
  recsys retrain                                   # the nightly flow once: ml-latest-small, every family
  recsys report --open                             # the latest run's HTML report
  recsys models list                               # registered models, aliases, why the champion is champion
  recsys ui                                        # MLflow UI on http://127.0.0.1:5000
  recsys <command> --help                          # options and examples of each command"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="Recommender training pipeline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument(
        "--plain", action="store_true", help="plain progress lines even on a terminal (the default in CI or a pipe)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    retrain = commands.add_parser(
        "retrain",
        help="run the nightly retrain flow once, locally",
        formatter_class=options.ModelDefaultsFormatter,
        epilog="examples:\n  recsys retrain\n  recsys retrain --config examples/nightly.yaml --families popularity,ease\n"
        "  recsys retrain --dataset ml-100k --families popularity,biased_mf --protocol temporal-user\n"
        "  recsys retrain --dataset my_ratings.parquet --families popularity,ease",
    )
    options.add_config_argument(retrain)
    retrain.add_argument(
        "--dataset", help="ml-latest-small, ml-100k, synthetic, a dataset spec (.yaml) or a ratings file"
    )
    retrain.add_argument(
        "--families", type=options.family_list, help="comma-separated families (default: all but opt-in stacked)"
    )
    retrain.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="split protocol: temporal-user (P4), temporal-global (P1/P2), leave-one-out (P3), held-out-users (P5); "
        "default: the dataset spec's `protocol`, else temporal-user",
    )
    retrain.add_argument("--seed", type=int, help="seed of every model")
    options.add_family_configs_argument(retrain)
    _add_execution_arguments(retrain)
    backtest = commands.add_parser(
        "backtest",
        help="run the rolling backtest flow once, locally",
        formatter_class=options.ModelDefaultsFormatter,
        epilog="example: recsys backtest --dataset ml-100k --families popularity,bias --windows 4 --window-days 14",
    )
    options.add_config_argument(backtest)
    backtest.add_argument(
        "--dataset", help="ml-latest-small, ml-100k, synthetic, a dataset spec (.yaml) or a ratings file"
    )
    backtest.add_argument(
        "--families", type=options.family_list, help="comma-separated families (default: all but opt-in stacked)"
    )
    backtest.add_argument("--windows", type=int, help="number of successive test windows")
    backtest.add_argument("--window-days", type=float, help="length of each window in days")
    backtest.add_argument("--seed", type=int, help="seed of every model")
    options.add_family_configs_argument(backtest)
    _add_execution_arguments(backtest)
    score = commands.add_parser(
        "score",
        help="write the champion's top-k for every known user to Parquet",
        epilog="example: recsys score --model recsys --alias champion --k 20",
        formatter_class=options.ModelDefaultsFormatter,
    )
    options.add_config_argument(score)
    score.add_argument("--model", help="registered model name")
    score.add_argument("--alias", help="alias of the version to use")
    score.add_argument("--k", type=int, help="recommendations per user")
    score.add_argument(
        "--histories",
        type=Path,
        metavar="FILE",
        help="Parquet of user_id, item_id, timestamp rows: score its users from them",
    )
    refresh = commands.add_parser(
        "refresh",
        help="bring each champion up to the newest data without a full retrain (warm start)",
        epilog="examples:\n  recsys refresh --dataset ml-100k\n  recsys refresh --dataset ml-100k --families sasrec "
        "--register-only",
        formatter_class=options.ModelDefaultsFormatter,
    )
    options.add_config_argument(refresh)
    refresh.add_argument("--dataset", help="the source, with its newer rows (as for retrain)")
    refresh.add_argument(
        "--families",
        type=options.family_list,
        help="families whose champion to refresh (default: every family with one, and recsys)",
    )
    refresh.add_argument("--warm-epochs", type=int, help="most epochs of each warm-started training loop")
    refresh.add_argument(
        "--register-only",
        action="store_true",
        default=None,
        help="register the refreshed versions without making them champion",
    )
    models = commands.add_parser(
        "models",
        help="list registered models and aliases; promote or roll back by hand",
        epilog="examples: recsys models list | recsys models promote recsys-ease 3 | recsys models rollback recsys",
    )
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="registered models, aliases, and why the champion is champion")
    promote = actions.add_parser(
        "promote",
        help="make a version champion (the old one becomes previous_champion)",
        epilog="example: recsys models promote recsys-ease 3",
    )
    promote.add_argument("name")
    promote.add_argument("version")
    rollback = actions.add_parser(
        "rollback", help="give champion back to previous_champion", epilog="example: recsys models rollback recsys"
    )
    rollback.add_argument("name")
    gc = commands.add_parser(
        "gc",
        help="remove old run folders and stale cache records (never what an alias or a kept run needs)",
        epilog="examples: recsys gc --keep-runs 7 | recsys gc --keep-runs 3 --dry-run",
    )
    gc.add_argument(
        "--keep-runs",
        type=int,
        default=DEFAULT_KEEP_RUNS,
        help=f"newest runs to keep (default {DEFAULT_KEEP_RUNS}, as after each nightly run)",
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    datasets.add_parser(commands)
    tune.add_parser(commands)
    options.add_parser(commands)
    ui.add_parsers(commands)
    return parser


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """How the flow runs (flows/runners.py): task runner, parallel tasks, cache."""
    parser.add_argument("--runner", choices=["local", "dask"], help="task runner")
    parser.add_argument(
        "--dask-address", help="Dask scheduler address; without it --runner dask starts a local cluster"
    )
    parser.add_argument("--workers", type=int, help="tasks at once: threads, or local Dask worker processes")
    parser.add_argument("--no-cache", action="store_const", const=True, help="recompute every stage, reusing nothing")


def _retrain(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.retrain import retrain
    from flows.runners import run_flow
    from reporting.progress import progress_view

    with progress_view(live=False if args.plain else None):
        summary = run_flow(retrain, args.run.config, args.run.execution)
    print("\n".join(run_summary_lines(summary)))
    return 1 if summary.failed else 0


def _backtest(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.backtest import backtest
    from flows.runners import run_flow
    from reporting.progress import progress_view

    with progress_view(live=False if args.plain else None):
        summary = run_flow(backtest, args.run.config, args.run.execution)
    print("\n".join(backtest_lines(summary)))
    return 1 if summary.failed else 0


def _score(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.score import batch_score
    from tasks.registry_admin import aliased_version
    from tasks.tracking import open_client

    config = args.run.config
    aliased_version(open_client(workspace), config.model_name, config.alias)  # before the flow: one line when missing
    print("\n".join(score_lines(batch_score(config, histories=args.histories), config.model_name)))
    return 0


def _refresh(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.refresh import refresh
    from tasks.promotion import champion_version
    from tasks.refresh_champions import models_to_refresh
    from tasks.tracking import open_client

    client = open_client(workspace)  # before the flow: one line when there is nothing to refresh
    if not any(champion_version(client, name) for name in models_to_refresh(client, args.run.config.families)):
        raise RecsysError("nothing to refresh: no registered model named has a champion (run `recsys retrain` first)")
    print("\n".join(refresh_lines(refresh(args.run.config))))
    return 0


def _models(args: argparse.Namespace, workspace: Workspace) -> int:
    from tasks.registry_admin import list_models, roll_back, set_champion
    from tasks.tracking import open_client

    client, lock = open_client(workspace), workspace.mlflow_db.parent / "promotion.lock"
    if args.action == "list":
        for row in list_models(client):
            aliases = ", ".join(f"{alias}=v{version}" for alias, version in sorted(row.aliases.items())) or "no aliases"
            print(f"{row.name:<24} latest v{row.latest_version:<4} {aliases}")
            if row.champion_reason:
                print(f"{'':<24} champion because: {row.champion_reason}")
    elif args.action == "promote":
        before = set_champion(client, args.name, args.version, lock)
        print(f"{args.name}: champion v{args.version}" + (f" (previous_champion v{before})" if before else ""))
    else:
        print(f"{args.name}: champion back to v{roll_back(client, args.name, lock)}")
    return 0


def _gc(args: argparse.Namespace, workspace: Workspace) -> int:
    from tasks.retention import collect_garbage, store_once

    collected = collect_garbage(workspace, args.keep_runs, dry_run=args.dry_run)
    print(("would have " if args.dry_run else "") + collected.describe())
    for run in collected.removed_runs:
        print(f"  {'would remove' if args.dry_run else 'removed'} runs/{run}")
    if not args.dry_run:
        saved = store_once([workspace.runs, workspace.mlflow_artifacts])
        print(f"linked {saved / 2**20:.1f} MiB of identical files to one copy")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "retrain": _retrain,
        "backtest": _backtest,
        "score": _score,
        "models": _models,
        "datasets": datasets.run,
        "ui": ui.run_ui,
        "report": ui.run_report,
        "gc": _gc,
        "tune": tune.run,
        "config": options.run,
        "refresh": _refresh,
    }
    try:
        workspace = Workspace.from_env()
        if args.command in options.FLOW_COMMANDS:  # the whole configuration, before anything is written
            args.run = options.run_config_of(args)
        configure_environment(workspace)
        if args.command in options.FLOW_COMMANDS:
            check_writable(workspace)
            if not args.debug:
                quiet_console()
        return handlers[args.command](args, workspace)
    except KeyboardInterrupt:
        print(f"recsys {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one clear line; bad data or configuration exits 2, anything else 1
        if args.debug:
            raise
        code = 2 if isinstance(error, RecsysError | ValueError) else 1
        print(
            f"recsys {args.command}: {type(error).__name__}: {_first_line(error)} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return code


def _first_line(error: Exception) -> str:
    """The error's message on one line (MLflow and contract errors can span many), at most 500 characters;
    a configuration error as `field: what is wrong` per field."""
    if isinstance(error, ValidationError):
        text = "; ".join(describe_errors(error))
    else:
        text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or "(no message)"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
