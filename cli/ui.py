"""`recsys ui` (the MLflow UI, and the Prefect UI when asked or already running) and
`recsys report` (a run's HTML report: its path, or open it)."""

import argparse
import os
import signal
import subprocess
import sys
import urllib.request
import webbrowser
from pathlib import Path

from pydantic import ValidationError

from stages.layout import SUMMARY_FILE, RunDir
from stages.results import BacktestSummary, RunSummary
from tasks.workspace import Workspace

LATEST = "latest"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser(
        "ui",
        help="start the MLflow UI on 127.0.0.1 against the workspace's store (and the Prefect UI with --prefect)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  recsys ui                      # MLflow on http://127.0.0.1:5000\n"
        "  recsys ui --port 5050 --prefect  # and a Prefect server with its UI on http://127.0.0.1:4200",
    )
    ui.add_argument("--port", type=int, default=5000, help="MLflow UI port (default 5000)")
    ui.add_argument("--prefect", action="store_true", help="also start a Prefect server (its UI) for this workspace")
    ui.add_argument("--prefect-port", type=int, default=4200, help="Prefect UI port (default 4200)")
    report = commands.add_parser(
        "report",
        help="print the path of a run's HTML report (written at the end of every retrain), or open it; "
        "for a backtest run, where its metric-over-time table and plot are",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  recsys report                  # the latest run\n"
        "  recsys report 20261201T212206Z-605e9d --open",
    )
    report.add_argument("run", nargs="?", default=LATEST, help="run id, run folder, or 'latest' (default)")
    report.add_argument("--open", action="store_true", help="open the report in the default web browser")


def find_run(workspace: Workspace, run: str) -> Path:
    """The folder of `run`: an id under workspace/runs, a folder path, or the newest finished run."""
    if run == LATEST:
        finished = sorted(path for path in workspace.runs.glob("*") if RunDir(path).finished())
        if not finished:
            raise ValueError(f"no finished run under {workspace.runs}: run `recsys retrain` first")
        return finished[-1]
    for candidate in (workspace.run_dir(run), Path(run)):
        if RunDir(candidate).finished():
            return candidate.resolve()
    raise ValueError(f"run {run!r} not found (no {SUMMARY_FILE} under {workspace.run_dir(run)} or {run})")


def report_path(run_dir: Path) -> Path:
    """The retrain run's report; written now from its summary when the run predates reports."""
    from reporting.report import REPORT_DIR, REPORT_FILE, write_run_report

    path = run_dir / REPORT_DIR / REPORT_FILE
    if path.exists():
        return path
    try:
        summary = RunSummary.load(RunDir(run_dir).summary_file)
    except ValidationError as error:
        raise ValueError(f"{run_dir} is not a retrain run: it has no report") from error
    return write_run_report(run_dir, summary)


def run_report(args: argparse.Namespace, workspace: Workspace) -> int:
    run = RunDir(find_run(workspace, args.run))
    if "table" in run.summary():  # a backtest writes no HTML report: its table and plot stand for it
        return _backtest_results(BacktestSummary.load(run.summary_file), args.open)
    path = report_path(run.path)
    print(path)
    if args.open:
        _open(path)
    return 0


def _backtest_results(summary: BacktestSummary, open_plot: bool) -> int:
    """Say where a backtest's results are (it has no HTML report); open its plot when asked."""
    plot = summary.plot
    print(f"backtest run {summary.run_id}: no HTML report (`recsys retrain` writes those); its results:")
    print(f"  metric-over-time table: {summary.table_csv}")
    print(f"  metric-over-time plot:  {plot or 'none (matplotlib was not installed)'}")
    for note in summary.notes:
        print(f"  note: {note}")
    if open_plot and plot is None:
        print("no plot to open: open the table above", file=sys.stderr)
    elif open_plot and plot is not None:
        print(f"opening the plot {plot}")
        _open(Path(plot))
    return 0


def _open(path: Path) -> None:
    """Open `path` in the default web browser; say so when there is none."""
    if not webbrowser.open(path.as_uri()):
        print("no web browser found here: open the path above", file=sys.stderr)


def prefect_ui_url() -> str | None:
    """The Prefect UI of the server PREFECT_API_URL points at, when it answers."""
    api = os.environ.get("PREFECT_API_URL")
    if not api:
        return None
    try:
        with urllib.request.urlopen(api.rstrip("/") + "/health", timeout=2) as response:  # noqa: S310 (local URL)
            return api.removesuffix("/").removesuffix("/api") if response.status == 200 else None
    except OSError:
        return None


def prefect_server_env(port: int) -> dict[str, str]:
    """Settings that make a Prefect server on `port` serve a UI calling that port: `--port` alone
    leaves the UI's API URL at PREFECT_API_URL, else PREFECT_SERVER_API_PORT (4200)."""
    api = f"http://127.0.0.1:{port}/api"
    return {
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_UI_API_URL": api,
        "PREFECT_API_URL": api,
    }


def run_ui(args: argparse.Namespace, workspace: Workspace) -> int:
    workspace.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        workspace.tracking_uri(),
        "--default-artifact-root",
        workspace.mlflow_artifacts.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    processes: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the servers on SIGTERM too
    try:
        if args.prefect:
            prefect_command = [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.prefect_port),
            ]
            processes.append(subprocess.Popen(prefect_command, env=env | prefect_server_env(args.prefect_port)))
            print(
                f"Prefect UI on http://127.0.0.1:{args.prefect_port} (runs see it with "
                f"PREFECT_API_URL=http://127.0.0.1:{args.prefect_port}/api)"
            )
        elif url := prefect_ui_url():
            print(f"Prefect UI on {url} (the server PREFECT_API_URL points at)")
        else:
            print("Prefect UI: no server running (`recsys ui --prefect` starts one)")
        processes.append(subprocess.Popen(command, env=env))
        print(
            f"MLflow UI on http://127.0.0.1:{args.port}: Models lists each family's versions and aliases"
            " (Ctrl-C stops it)"
        )
        return processes[-1].wait()
    finally:
        _stop(processes)


def _stop(processes: list[subprocess.Popen], grace_seconds: float = 30.0) -> None:
    """Terminate the servers this command started (the newest first), killing any that linger."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
