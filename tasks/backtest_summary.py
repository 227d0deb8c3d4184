"""A backtest's entries (one per window and family: scored, empty or failed), the note for a window
scored on too few users, and the summary the backtest flow returns and writes as `summary.json`."""

from pathlib import Path
from typing import Any

from stages.evaluate import BACKTEST_TABLE
from stages.layout import EvalDir, RunDir
from stages.manifest import read_manifest
from stages.results import BacktestFamily, BacktestSummary, MlflowRun

MIN_EVAL_USERS = 50  # fewer users per window give intervals too wide to read a trend from


def entry(window: int, family: str, split_dir: Path, eval_dir: Path | None, status: str) -> dict[str, Any]:
    """One window and family of a backtest: its evaluation folder when scored, and its status."""
    return {"window": window, "family": family, "split_dir": split_dir, "eval_dir": eval_dir, "status": status}


def warn_of_few_users(entries: list[dict[str, Any]], logger: Any, minimum: int = MIN_EVAL_USERS) -> list[str]:
    """Log a WARNING for each window whose scored families evaluated fewer than `minimum` users (the
    fewest any did); return those lines for the summary."""
    evaluated: dict[int, int] = {}
    for scored in entries:
        if scored["eval_dir"] is not None:
            users = EvalDir(scored["eval_dir"]).metrics()["n_eval_users"]
            evaluated[scored["window"]] = min(users, evaluated.get(scored["window"], users))
    notes = [
        f"window {window}: only {users} users evaluated (fewer than {minimum}): its metrics are noisy; "
        "longer windows (--window-days) give each more users"
        for window, users in sorted(evaluated.items())
        if users < minimum
    ]
    for note in notes:
        logger.warning(note)
    return notes


def build_backtest_summary(
    run: RunDir,
    run_id: str,
    config: dict[str, Any],
    families: list[str],
    entries: list[dict[str, Any]],
    report_dir: Path,
    notes: list[str],
    mlflow: MlflowRun,
) -> BacktestSummary:
    """Where the metric-over-time table and plot are, the families scored on at least one window (with
    how many), each failed window and family with its error, the few-user notes and the MLflow run."""
    plot = report_dir / f"{BACKTEST_TABLE}.png"
    return BacktestSummary(
        run_id=run_id,
        run_dir=str(run.path),
        config=config,
        windows=read_manifest(run.split)["counts"]["windows"],
        table=str(report_dir / f"{BACKTEST_TABLE}.parquet"),
        table_csv=str(report_dir / f"{BACKTEST_TABLE}.csv"),
        plot=str(plot) if plot.exists() else None,
        families={
            family: BacktestFamily(windows_ok=ok)
            for family in families
            if (ok := sum(e["family"] == family and e["status"] == "ok" for e in entries))
        },
        failed={f"{e['window']}/{e['family']}": e["status"] for e in entries if e["status"].startswith("failed")},
        notes=notes,
        mlflow=mlflow,
    )
