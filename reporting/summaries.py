"""What the `recsys` flow commands print when a flow ends: the run's counts, tables, promotion
decisions and where everything is; a backtest's table; a refresh's outcome per model; a scoring's
counts. Each function returns the lines; the command prints them."""

import os
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.splitting import iso_utc
from reporting.formatting import verdict
from reporting.tables import format_backtest_table, format_metrics_table, format_paired, format_warm_cold_table
from stages.results import BacktestSummary, RunSummary

INTERVALS_NOTE = "(95% percentile-bootstrap intervals over users)"


def run_summary_lines(summary: RunSummary) -> list[str]:
    """A retrain run: where it is, what every input row became, the split, each family's metrics
    (warm and cold, paired against popularity), skipped and failed families, promotion decisions."""
    lines = [f"\nrun {summary.run_id}  folder {summary.run_dir}  protocol {summary.protocol}"]
    lines += validation_lines(summary.validation) + [split_line(summary.split) + "\n"]
    lines += [format_metrics_table(summary.family_metrics()), INTERVALS_NOTE]
    lines += ["\n" + format_warm_cold_table(summary.family_metrics())]
    lines += format_paired(Path(summary.run_dir), list(summary.families))
    lines += [f"skipped {family}: {reason}" for family, reason in summary.skipped.items()]
    lines += [f"FAILED {family}: {error}" for family, error in summary.failed.items()]
    lines += ["\npromotion:"] + promotion_lines(summary)
    lines += [f"\nsummary: {summary.run_dir}/summary.json"]
    if summary.report:
        lines += [f"report:  {summary.report}  -> `recsys report --open`"]
    lines += [
        f"MLflow store: {summary.mlflow.tracking_uri}  -> open with `make ui` (http://127.0.0.1:5000)",
        f"Prefect home: {os.environ['PREFECT_HOME']}  -> `prefect server start --host 127.0.0.1` for its UI",
    ]
    return lines


def validation_lines(validation: dict[str, Any]) -> list[str]:
    """Every ratings, items and tags row read: valid, quarantined or unparseable; drift warnings."""
    lines = [
        f"rows: {validation['source_rows']} read = {validation['valid_rows']} valid"
        f" + {validation['quarantined_rows']} quarantined + {validation['rejected_at_parse']} unparseable"
    ]
    for table in ("items", "tags"):
        if f"{table}_valid_rows" in validation:
            counts = {
                part: validation.get(f"{table}_{part}_rows", 0)
                for part in ("source", "valid", "quarantine", "rejected")
            }
            lines.append(
                f"{table}: {counts['source']} read = {counts['valid']} valid + {counts['quarantine']} quarantined"
                f" + {counts['rejected']} unparseable"
            )
    return lines + [f"WARNING {breach}" for breach in validation.get("drift", {}).get("breaches", [])]


def split_line(split: dict[str, Any]) -> str:
    """The split's parts in rows (P5: with the held-out users' histories) and its cold test rows."""
    test = split["test"]
    held_out = split.get("held_out")  # P5: whole users kept out of train, scored from their histories
    histories = f" + {held_out['history_rows']} history rows of {held_out['users']} held-out users" if held_out else ""
    return (
        f"split: {split['train_rows']} train + {split['valid_rows']} valid + {test['test_rows']} test rows{histories};"
        f" {test['cold_rows']} test rows cold (user or item not in train)"
    )


def promotion_lines(summary: RunSummary) -> list[str]:
    """Each registered version with what it became and why; the overall model last."""
    lines = [
        f"  {decision.registered_model} v{decision.version} -> {verdict(decision)}: {decision.reason}"
        for decision in (outcome.registration for outcome in summary.families.values())
    ]
    if summary.overall:
        lines.append(f"  recsys v{summary.overall.version} -> {verdict(summary.overall)}: {summary.overall.reason}")
    return lines


def backtest_lines(summary: BacktestSummary) -> list[str]:
    """A backtest: its metric over time per family and window, where the table and plot are."""
    return [
        f"\nbacktest {summary.run_id}  folder {summary.run_dir}\n",
        format_backtest_table(pl.read_parquet(summary.table)),
        INTERVALS_NOTE,
        f"\ntable: {summary.table}  and  {summary.table_csv}",
        f"plot: {summary.plot or 'skipped (matplotlib is not installed)'}",
        *(f"FAILED {key}: {error}" for key, error in summary.failed.items()),
        f"MLflow store: {summary.mlflow.tracking_uri}  (experiment recsys-backtest)",
    ]


def refresh_lines(summary: dict[str, Any]) -> list[str]:
    """A refresh: per registered model, what happened (refreshed, up to date, ...), versions and time."""
    lines = [f"\nrefresh {summary['run_id']}  folder {summary['run_dir']}  data up to {iso_utc(summary['data_end'])}"]
    for outcome in summary["models"]:
        version = (
            f"v{outcome['champion']} -> v{outcome['version']}" if outcome["version"] else f"v{outcome['champion']}"
        )
        role = " champion" if outcome["promoted"] else (" registered" if outcome["version"] else "")
        timing = f" {outcome['fit_seconds']:.0f} s" if outcome["version"] else ""
        lines.append(
            f"  {outcome['registered_model']:<26} {outcome['status']:<11} {version}{role}{timing}: {outcome['reason']}"
        )
    return lines


def score_lines(result: dict[str, Any], model_name: str) -> list[str]:
    """A batch scoring: how many recommendations for how many users, from which version, written where."""
    counts = result["counts"]
    return [
        f"\n{counts['rows']} recommendations for {counts['users']} users from {model_name} v{result['model_version']}",
        f"written to {result['output_dir']} ({counts['parts']} part files + manifest.json)",
    ]
