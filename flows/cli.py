"""The `recsys` command: run the pipeline and open its UIs."""

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from tasks.workspace import Workspace, configure_environment

HEADLINE = ["rmse", "mae", "ndcg_at_10", "recall_at_10", "precision_at_10", "hit_rate_at_10", "map_at_10", "coverage_at_10"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description="Recommender training pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)
    retrain = commands.add_parser(
        "retrain",
        help="run the nightly retrain flow once, locally",
        epilog="example: recsys retrain --dataset ml-100k --families popularity,biased_mf --seed 7",
    )
    retrain.add_argument("--dataset", default="ml-latest-small", help="ml-latest-small, ml-100k, synthetic or a file")
    retrain.add_argument("--families", default=None, help="comma-separated families (default: all)")
    retrain.add_argument("--protocol", default="temporal-global", help="split protocol (default temporal-global)")
    retrain.add_argument("--seed", type=int, default=42)
    ui = commands.add_parser("ui", help="start the MLflow UI on 127.0.0.1 against the workspace's store")
    ui.add_argument("--port", type=int, default=5000)
    return parser


def format_metrics_table(families: dict[str, Any]) -> str:
    """One line per family with its headline metrics and evaluated counts."""
    header = f"{'family':<14}" + "".join(f"{name:>16}" for name in HEADLINE) + f"{'eval users':>12}{'eval rows':>11}"
    lines = [header]
    for family, entry in families.items():
        metrics = entry["metrics"]
        cells = []
        for name in HEADLINE:
            value = metrics.get(name)
            stderr = metrics.get(f"{name}_stderr")
            text = "-" if value is None else f"{value:.4f}" + (f"±{1.96 * stderr:.3f}" if stderr == stderr and stderr else "")
            cells.append(f"{text:>16}")
        lines.append(f"{family:<14}" + "".join(cells) + f"{metrics['n_eval_users']:>12}{metrics['n_eval_rows']:>11}")
    return "\n".join(lines)


def _retrain(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.retrain import RetrainConfig, retrain

    families = [name.strip() for name in args.families.split(",")] if args.families else None
    config = RetrainConfig(dataset=args.dataset, families=families, protocol=args.protocol, seed=args.seed)
    summary = retrain(config)
    print(f"\nrun {summary['run_id']}  folder {summary['run_dir']}")
    validation = summary["validation"]
    print(
        f"rows: {validation['source_rows']} read = {validation['valid_rows']} valid"
        f" + {validation['quarantined_rows']} quarantined + {validation['rejected_at_parse']} unparseable"
    )
    test = summary["split"]["test"]
    print(f"test: {test['test_rows']} rows, {test['cold_rows']} cold (user or item not in train)\n")
    print(format_metrics_table(summary["families"]))
    for family, error in summary["failed"].items():
        print(f"FAILED {family}: {error}")
    print(f"\nsummary: {summary['run_dir']}/summary.json")
    print(f"MLflow store: {summary['mlflow'].get('tracking_uri')}  -> open with `make ui` (http://127.0.0.1:5000)")
    print(f"Prefect home: {os.environ['PREFECT_HOME']}  -> `prefect server start --host 127.0.0.1` for its UI")
    return 1 if summary["failed"] else 0


def _ui(args: argparse.Namespace, workspace: Workspace) -> int:
    workspace.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", workspace.tracking_uri(),
        "--default-artifact-root", workspace.mlflow_artifacts.as_uri(),
        "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",
    ]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C stops it)")
    return subprocess.call(command, env=env)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workspace = Workspace.from_env()
    configure_environment(workspace)
    handlers = {"retrain": _retrain, "ui": _ui}
    return handlers[args.command](args, workspace)


if __name__ == "__main__":
    sys.exit(main())
