"""One self-contained HTML file per run: data summary, contract results, split sizes, the family
comparison with intervals, the plots (embedded as base64 PNG), and the promotion decisions."""

import base64
import html
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.ids import decode_column
from recsys_models.io import atomic_write_bytes
from reporting.formatting import format_interval
from reporting.formatting import verdict as decision_verdict
from reporting.plots import (
    plot_metric_comparison,
    plot_popularity_bias,
    plot_recall_curves,
    plot_training_curves,
    popularity_deciles,
)
from stages.ingest import ID_TABLE
from stages.layout import RunDir
from stages.results import RunSummary

logger = logging.getLogger(__name__)
REPORT_DIR = "report"
REPORT_FILE = "report.html"
TABLE_METRICS = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "map_at_10")
PLOT_TITLES = {
    "metric_comparison": "Families compared (95% intervals over users)",
    "recall_at_k": "Recall@k",
    "popularity_bias": "Popularity bias: recommended items against the catalogue",
    "training_curves": "Training curves",
}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wide { overflow-x: auto; } .wide table { font-size: .9em; } .warn { color: #b54708; }
summary { cursor: pointer; font-weight: 600; margin: .6em 0; }
.ok { color: #1a7f37; } .bad { color: #b42318; font-weight: bold; } .note { color: #666; font-size: .9em; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
"""


def write_run_plots(run_dir: Path, summary: RunSummary, k: int = 10) -> dict[str, Path]:
    """Write the run's plots under `run_dir/report/`; returns the PNGs that had data, by name."""
    out = run_dir / REPORT_DIR
    families = list(summary.families)
    metrics = summary.family_metrics()
    histories = {family: _read_json(RunDir(run_dir).train(family) / "history.json", []) for family in families}
    plots = {
        "metric_comparison": plot_metric_comparison(metrics, out / "metric_comparison.png"),
        "recall_at_k": plot_recall_curves(metrics, out / "recall_at_k.png"),
        "popularity_bias": plot_popularity_bias(_popularity_shares(run_dir, families, k), out / "popularity_bias.png"),
        "training_curves": plot_training_curves(histories, out / "training_curves.png"),
    }
    return {name: path for name, path in plots.items() if path is not None}


def write_run_report(run_dir: Path, summary: RunSummary) -> Path:
    """Write `run_dir/report/report.html` (plots included) and return its path."""
    plots = write_run_plots(run_dir, summary, int(summary.config.get("k", 10)))
    validation_report = _read_json(RunDir(run_dir).validation_report_file, {})
    sections = [
        f"<h1>Run {_e(summary.run_id)}</h1>",
        _overview(summary),
        "<h2>Data</h2>" + _data_summary(summary.validation),
        "<h2>Data contracts</h2>" + _contracts(validation_report),
        "<h2>Split</h2>" + _split(summary.split),
        "<h2>Families</h2>" + _family_table(summary.family_metrics(), summary.failed),
        "<h2>Promotion</h2>" + _promotion(summary),
    ]
    rankers = _learned_rankers(run_dir, summary.families)
    if rankers:
        sections.append("<h2>Learned rankers: candidate recall and feature importances</h2>" + rankers)
    sections += [f"<h2>{_e(PLOT_TITLES[name])}</h2>{_image(path)}" for name, path in plots.items()]
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>recsys run {_e(summary.run_id)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    path = run_dir / REPORT_DIR / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, page.encode("utf-8"))
    logger.info("run report: %s", path)
    return path


def _overview(summary: RunSummary) -> str:
    config = summary.config
    rows = [
        ("dataset", config.get("dataset")),
        ("protocol", summary.protocol or config.get("protocol")),
        ("seed", config.get("seed")),
        ("families", ", ".join(summary.families) or "none"),
        ("failed", ", ".join(summary.failed) or "none"),
        ("run folder", summary.run_dir),
        ("MLflow", f"{summary.mlflow.tracking_uri} (run {summary.mlflow.run_id})"),
    ]
    return _table(["", ""], rows, header=False)


def _data_summary(counts: Mapping[str, Any]) -> str:
    rows = [
        ("ratings read", counts["source_rows"]),
        ("valid", counts["valid_rows"]),
        ("quarantined", counts["quarantined_rows"]),
        ("unparseable", counts["rejected_at_parse"]),
    ]
    for table in ("items", "tags"):
        if f"{table}_valid_rows" in counts:
            rows.append(
                (
                    f"{table} valid / quarantined",
                    f"{counts[f'{table}_valid_rows']} / {counts[f'{table}_quarantine_rows']}",
                )
            )
    accounted = counts["valid_rows"] + counts["quarantined_rows"] + counts["rejected_at_parse"]
    check = "ok" if accounted == counts["source_rows"] else "bad"
    note = f"<p class='{check}'>row accounting: read = valid + quarantined + unparseable ({accounted})</p>"
    breaches = counts.get("drift", {}).get("breaches", [])
    drift = "".join(f"<p class='bad'>drift: {_e(breach)}</p>" for breach in breaches)
    return _table(["", "rows"], rows, header=False) + note + drift


def _contracts(report: Mapping[str, Any]) -> str:
    if not report:
        return "<p class='note'>no validation report</p>"
    parts = []
    for table, result in report.items():
        if not isinstance(result, dict) or "expectations" not in result:
            continue
        broken = [e for e in result["expectations"] if not e["success"] and not e.get("skipped", False)]
        if any(expectation["policy"] == "fail" for expectation in broken):
            status = "<span class='bad'>failed: the run stops</span>"
        elif result["quarantined_rows"]:
            status = "<span class='warn'>passed, bad rows quarantined</span>"
        else:
            status = "<span class='ok'>passed</span>"
        summary = (
            f"{_e(table)}: {status}, {result['valid_rows']} of {result['input_rows']} rows valid, "
            f"{result['quarantined_rows']} quarantined ({len(result['expectations'])} expectations, "
            f"{len(broken)} broken)"
        )
        rows = [
            (
                expectation["name"],
                expectation["policy"],
                _status(expectation["success"], expectation.get("skipped", False)),
                expectation.get("unexpected_count", 0),
                expectation.get("reason", ""),
            )
            for expectation in result["expectations"]
        ]
        table_html = _table(["expectation", "policy", "result", "bad rows", "why it exists"], rows, raw_columns={2})
        parts.append(f"<details{' open' if broken else ''}><summary>{summary}</summary>{table_html}</details>")
    return "".join(parts)


def _split(counts: Mapping[str, Any]) -> str:
    test = counts["test"]
    rows = [
        ("train", counts["train_rows"]),
        ("valid (tail of train, early stopping)", counts["valid_rows"]),
        ("test", test["test_rows"]),
        ("test rows cold (user or item not in train)", test["cold_rows"]),
    ]
    if "held_out" in counts:  # P5: held-out users, scored from these histories, never trained on
        rows.append((f"histories of {counts['held_out']['users']} held-out users", counts["held_out"]["history_rows"]))
    rows += [(name.replace("_", " "), counts[name]) for name in ("train_users", "train_items") if name in counts]
    leakage = counts.get("leakage", {})
    if leakage:
        rows.append(("leakage check", "passed" if leakage.get("passed") else "FAILED"))
    return _table(["part", "rows"], rows, header=True)


def _family_table(metrics_by_family: Mapping[str, Mapping[str, Any]], failed: Mapping[str, str]) -> str:
    ranked = sorted(metrics_by_family, key=lambda family: -metrics_by_family[family].get("ndcg_at_10", 0.0))
    headers = ["family", *TABLE_METRICS, "coverage_at_10", "eval users", "rmse", "eval rows"]
    rows = []
    for family in ranked:
        metrics = metrics_by_family[family]
        rows.append(
            [
                family,
                *(format_interval(metrics, name) for name in TABLE_METRICS),
                format_interval(metrics, "coverage_at_10"),
                metrics.get("n_eval_users", "-"),
                format_interval(metrics, "rmse"),
                metrics.get("n_eval_rows", "-") if "rmse" in metrics else "-",
            ]
        )
    rows += [[family, "failed", reason[:200], *([""] * (len(headers) - 3))] for family, reason in failed.items()]
    note = "<p class='note'>value [95% percentile-bootstrap interval over users]; sorted by ndcg_at_10</p>"
    return f"<div class='wide'>{_table(headers, rows)}</div>" + note


def _promotion(summary: RunSummary) -> str:
    decisions = [outcome.registration for outcome in summary.families.values()]
    rows = [(d.registered_model, d.version, decision_verdict(d), d.reason) for d in decisions]
    overall = summary.overall
    if overall:
        best = _best_family(summary)
        rows.append(
            (
                overall.registered_model,
                overall.version,
                decision_verdict(overall),
                f"this run's best family by {_gate_metric(summary)}: {best}; {overall.reason}",
            )
        )
    note = (
        "<p class='note'>A new version becomes champion only if it passes the quality bounds (enough users, "
        "above the run's popularity baseline) and, against the current champion on the same users: a "
        "<b>refresh</b> (same family and configuration) is not worse beyond the non-inferiority margin; a "
        "<b>switch</b> (another family or configuration) is better beyond noise with a minimum detectable "
        "effect within the margin. Each reason quotes the paired interval and that effect. Promote or roll "
        "back by hand with "
        "<code>recsys models promote NAME VERSION</code> / <code>recsys models rollback NAME</code> or in the "
        "MLflow UI (Models, the version, Aliases).</p>"
    )
    return _table(["registered model", "version", "became", "why"], rows) + note


def _gate_metric(summary: RunSummary) -> str:
    return str(summary.config.get("gate", {}).get("metric", "ndcg_at_10"))


def _best_family(summary: RunSummary) -> str:
    """The family the global model `recsys` received: the best of the run by the gating metric."""
    metric = _gate_metric(summary)
    figures = {family: metrics.get(metric) for family, metrics in summary.family_metrics().items()}
    scored: dict[str, float] = {
        family: value for family, value in figures.items() if value is not None and value == value
    }
    return max(scored, key=scored.__getitem__) if scored else "-"


RANKER_REPORT = "ranker_report.json"  # written beside a learned ranker's saved model (recsys_models.stacked)


def _learned_rankers(run_dir: Path, families: Iterable[str], top: int = 15) -> str:
    """For each family with a learned ranker (its served model, else its evaluated fit): candidate
    recall@N on the ranker's tail and its `top` features by share of split gain."""
    parts = []
    for family in families:
        paths = [
            RunDir(run_dir).serve(family) / "model" / RANKER_REPORT,
            RunDir(run_dir).train(family) / "model" / RANKER_REPORT,
        ]
        report = next((_read_json(path, {}) for path in paths if path.exists()), None)
        if not report:
            continue
        recall = [(key, f"{value:.4f}") for key, value in report.items() if key.startswith("candidate_recall_at_")]
        importance = [
            (name, f"{share:.3f}") for name, share in list(report.get("feature_importance", {}).items())[:top]
        ]
        parts.append(
            f"<h3>{_e(family)}</h3><p class='note'>{_e(report.get('ranker_rounds'))} boosting rounds from "
            f"{_e(report.get('ranker_base') or 'a constant')}; candidate recall is measured on the ranker's "
            "training tail: a weak candidate stage caps what the ranker can reach.</p>"
            + _table(["candidate recall", "value"], recall)
            + _table(["feature", "share of split gain"], importance)
        )
    return "".join(parts)


def _popularity_shares(run_dir: Path, families: Iterable[str], k: int) -> dict[str, Any]:
    """Where each family's top-k lands among the catalogue's popularity deciles (train + valid counts)."""
    run = RunDir(run_dir)
    parts = [run.split / f"{name}.parquet" for name in ("train", "valid")]
    if not all(path.exists() for path in parts):
        return {}
    counts = pl.concat([pl.read_parquet(path, columns=["item_id"]) for path in parts])["item_id"].value_counts()
    ids_path = run.validate / f"{ID_TABLE}.parquet"  # recommendations hold the ids' text
    counts = decode_column(counts, "item_id", pl.read_parquet(ids_path) if ids_path.exists() else None, "item")
    item_counts = dict(zip(counts["item_id"].to_list(), counts["count"].to_list(), strict=True))
    recommended = {}
    for family in families:
        path = run.evaluation(family).recommendations_file
        if path.exists():
            recommended[family] = pl.read_parquet(path).filter(pl.col("rank") <= k)["item_id"].to_list()
    return popularity_deciles(item_counts, recommended) if item_counts else {}


def _status(success: bool, skipped: bool) -> str:
    if skipped:
        return "<span class='note'>skipped</span>"
    return "<span class='ok'>ok</span>" if success else "<span class='bad'>broken</span>"


def _table(
    headers: list[str], rows: Iterable[Iterable[Any]], header: bool = True, raw_columns: set[int] | None = None
) -> str:
    """An HTML table; cells are escaped except in `raw_columns` (already HTML); numbers right-aligned."""
    head = "<tr>" + "".join(f"<th>{_e(name)}</th>" for name in headers) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            text = str(cell) if raw_columns and index in raw_columns else _e(cell)
            numeric = isinstance(cell, int | float) or (isinstance(cell, str) and cell[:1].isdigit())
            cells.append(f"<td class='num'>{text}</td>" if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + head + "".join(body) + "</table>"


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_e(path.stem)}' src='data:image/png;base64,{encoded}'>"


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
