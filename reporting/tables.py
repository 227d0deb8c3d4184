"""The tables the `recsys` command prints: a run's metrics with intervals, each family against the
popularity baseline (paired), a backtest's metric over time, and the warm vs cold-item table."""

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reporting.formatting import format_interval
from reporting.warm_cold_table import format_warm_cold_table
from stages.layout import RunDir

if TYPE_CHECKING:
    import polars as pl

__all__ = ["format_backtest_table", "format_metrics_table", "format_paired", "format_warm_cold_table"]

BASELINE = "popularity"
RATING_COLUMNS = ["rmse", "mae"]
RANKING_COLUMNS = ["ndcg_at_10", "recall_at_10", "precision_at_10", "hit_rate_at_10", "map_at_10", "mrr_at_10"]
BACKTEST_COLUMNS = ["n_eval_users", "ndcg_at_10", "recall_at_10", "hit_rate_at_10", "rmse"]


def format_metrics_table(metrics_by_family: Mapping[str, Mapping[str, Any]], max_width: int | None = None) -> str:
    """One line per family: ranking metrics at 10 with their 95% intervals, coverage and evaluated
    users; then, for the families that predict ratings, RMSE and MAE with intervals and evaluated rows.

    Ranking columns are dropped from the right (NDCG and recall always stay) until a line fits
    `max_width` (default: the terminal's width); the report and metrics.json hold them all."""
    max_width = max_width or shutil.get_terminal_size((160, 24)).columns
    width = max([12] + [len(name) + 2 for name in metrics_by_family])
    shown = list(RANKING_COLUMNS)
    while len(shown) > 2 and width + 23 * len(shown) + 28 > max_width:
        shown.pop()
    lines = [
        f"{'family':<{width}}" + "".join(f"{name:>23}" for name in shown) + f"{'coverage_at_10':>16}{'eval users':>12}"
    ]
    for family, metrics in metrics_by_family.items():
        cells = "".join(f"{format_interval(metrics, name):>23}" for name in shown)
        coverage = format_interval(metrics, "coverage_at_10")
        lines.append(f"{family:<{width}}{cells}{coverage:>16}{metrics['n_eval_users']:>12}")
    raters = {family: metrics for family, metrics in metrics_by_family.items() if "rmse" in metrics}
    if raters:
        lines += ["", f"{'family':<{width}}" + "".join(f"{name:>23}" for name in RATING_COLUMNS) + f"{'eval rows':>12}"]
        for family, metrics in raters.items():
            cells = "".join(f"{format_interval(metrics, name):>23}" for name in RATING_COLUMNS)
            lines.append(f"{family:<{width}}{cells}{metrics['n_eval_rows']:>12}")
    return "\n".join(lines)


def format_paired(run_dir: Path, families: list[str], metric: str = "ndcg_at_10") -> list[str]:
    """Each family against the popularity baseline on the same users (paired bootstrap, paired t-test,
    and the minimum detectable effect at 95% / 80% power)."""
    from stages.evaluate import compare_families  # the paired statistics, only when a table is printed

    if BASELINE not in families:
        return []
    lines = []
    for family in families:
        if family == BASELINE:
            continue
        result = compare_families(RunDir(run_dir).evaluate(family), RunDir(run_dir).evaluate(BASELINE), metric)
        lines.append(
            f"{family} - {BASELINE} {metric}: {result.difference:+.4f} [{result.ci_low:+.4f}, {result.ci_high:+.4f}]"
            f"  p={result.p_value:.3g}  MDE {result.minimum_detectable_effect:.4f}  on {result.n_users} users"
        )
    return lines


def format_backtest_table(table: "pl.DataFrame") -> str:
    """Metric over time: one line per window and family, with intervals."""
    header = f"{'window':>6}  {'cut-off':<26}{'family':<14}{'status':<8}" + "".join(
        f"{name:>28}" for name in BACKTEST_COLUMNS
    )
    lines = [header]
    for row in table.iter_rows(named=True):
        status = row["status"] if len(row["status"]) <= 7 else row["status"][:6] + "…"
        cells = "".join(f"{format_interval(row, name):>28}" for name in BACKTEST_COLUMNS)
        lines.append(f"{row['window']:>6}  {row['cutoff']:<26}{row['family']:<14}{status:<8}" + cells)
    return "\n".join(lines)
