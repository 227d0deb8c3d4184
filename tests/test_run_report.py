"""Plots and the HTML run report, on a small run folder written here by hand."""

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from reporting.plots import (
    plot_metric_comparison,
    plot_popularity_bias,
    plot_recall_curves,
    plot_training_curves,
    popularity_deciles,
)
from reporting.report import write_run_report
from stages.results import RunSummary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics(ndcg: float, rating: bool = False) -> dict:
    values = {"n_eval_users": 40, "n_eval_rows": 300, "coverage_at_10": 0.2}
    for k in (5, 10, 20, 50):
        for name, value in (("ndcg", ndcg), ("recall", ndcg * k / 10), ("hit_rate", 0.5), ("map", ndcg / 2)):
            key = f"{name}_at_{k}"
            values |= {key: value, f"{key}_ci_low": value * 0.8, f"{key}_ci_high": value * 1.2}
    if rating:
        values |= {"rmse": 0.91, "rmse_ci_low": 0.88, "rmse_ci_high": 0.94, "mae": 0.7}
    return values


def is_png(path: Path | None) -> bool:
    return path is not None and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 2000


def test_popularity_deciles_known_answer() -> None:
    counts = {item: 100 - item for item in range(20)}  # item 0 most popular; 2 items per decile
    shares = popularity_deciles(counts, {"popular": [0, 1, 0, 1], "tail": [18, 19, 19, 999]})
    np.testing.assert_allclose(shares["popular"], [1.0] + [0.0] * 9)
    np.testing.assert_allclose(shares["tail"], [0.0] * 9 + [1.0])  # 999 is not in the catalogue: not counted
    interactions = shares["training interactions"]
    assert interactions.sum() == pytest.approx(1.0)
    assert interactions[0] == pytest.approx((100 + 99) / sum(counts.values()))
    assert (np.diff(interactions) < 0).all()


def test_plots_write_pngs_and_skip_without_data(tmp_path: Path) -> None:
    by_family = {"popularity": metrics(0.08), "biased_mf": metrics(0.05, rating=True)}
    assert is_png(plot_metric_comparison(by_family, tmp_path / "compare.png"))
    assert is_png(plot_recall_curves(by_family, tmp_path / "recall.png"))
    history = [{"epoch": e, "train_loss": 1 / e, "valid_rmse": 1 - e / 100} for e in (1, 2, 3)]
    history += [{"epoch": e, "refit_train_loss": 1 / e} for e in (1, 2)]
    assert is_png(plot_training_curves({"biased_mf": history, "ease": []}, tmp_path / "curves.png"))
    shares = popularity_deciles({1: 5, 2: 3, 3: 1}, {"popularity": [1, 1, 2]})
    assert is_png(plot_popularity_bias(shares, tmp_path / "bias.png"))
    assert plot_training_curves({"ease": []}, tmp_path / "none.png") is None
    assert plot_recall_curves({"bias": {"rmse": 0.9}}, tmp_path / "none.png") is None
    assert plot_metric_comparison({}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, RunSummary]:
    """A run folder with what the report reads: split, history, recommendations, contracts."""
    run = tmp_path / "runs" / "20260101T000000Z-abc123"
    (run / "split").mkdir(parents=True)
    train = pl.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 10]})
    train.write_parquet(run / "split" / "train.parquet")
    train.head(1).write_parquet(run / "split" / "valid.parquet")
    families = {"popularity": metrics(0.08), "biased_mf": metrics(0.05, rating=True)}
    for family in families:
        (run / "train" / family).mkdir(parents=True)
        (run / "evaluate" / family).mkdir(parents=True)
        history = [{"epoch": 1, "train_loss": 0.9, "valid_rmse": 0.95}] if family == "biased_mf" else []
        (run / "train" / family / "history.json").write_text(json.dumps(history))
        pl.DataFrame({"user_id": [1, 2], "item_id": [10, 12], "rank": [1, 1], "score": [1.0, 0.5]}).write_parquet(
            run / "evaluate" / family / "recommendations.parquet"
        )
    (run / "validate").mkdir()
    expectation = {
        "name": "expect_column_values_to_be_between(rating)",
        "policy": "quarantine",
        "success": False,
        "skipped": False,
        "unexpected_count": 2,
        "reason": "Ratings <off the scale> are typos.",
    }
    report = {
        "ratings": {
            "success": True,
            "input_rows": 7,
            "valid_rows": 5,
            "quarantined_rows": 2,
            "expectations": [expectation],
        },
        "data_docs": "data_docs/index.html",
    }
    (run / "validate" / "validation_report.json").write_text(json.dumps(report))
    registration = {
        "popularity": {
            "registered_model": "recsys-popularity",
            "version": "3",
            "promoted": True,
            "reason": "beats the champion: difference +0.01 [+0.005, +0.02]",
        },
        "biased_mf": {
            "registered_model": "recsys-biased_mf",
            "version": "2",
            "promoted": False,
            "reason": "not better than the champion beyond noise",
        },
    }
    summary = RunSummary.model_validate(
        {
            "run_id": run.name,
            "run_dir": str(run),
            "config": {"dataset": "ml-100k", "protocol": "temporal-user", "k": 10},
            "validation": {"source_rows": 7, "valid_rows": 5, "quarantined_rows": 2, "rejected_at_parse": 0},
            "split": {"train_rows": 5, "valid_rows": 1, "test": {"test_rows": 3, "cold_rows": 1}},
            "families": {f: {"metrics": m, "registration": registration[f]} for f, m in families.items()},
            "failed": {"als": "ValueError: boom"},
            "overall": {"registered_model": "recsys", "version": "4", "promoted": True, "reason": "first version"},
            "mlflow": {"run_id": "abc", "tracking_uri": "sqlite:///x.db"},
        }
    )
    return run, summary


def test_report_is_one_self_contained_html_file(run_dir: tuple[Path, RunSummary]) -> None:
    run, summary = run_dir
    path = write_run_report(run, summary)
    assert path == run / "report" / "report.html"
    page = path.read_text()
    images = re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4  # comparison, recall@k, popularity bias, training curves
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)  # nothing fetched from elsewhere
    for expected in (
        "0.0800 [0.064, 0.096]",
        "0.9100 [0.880, 0.940]",
        "recsys-popularity",
        "champion",
        "beats the champion: difference +0.01",
        "challenger",
        "ValueError: boom",
        "temporal-user",
        "this run&#x27;s best family by ndcg_at_10: popularity",
    ):
        assert expected in page, expected
    assert "Ratings &lt;off the scale&gt; are typos." in page  # escaped, not markup
    assert "<details open><summary>ratings: <span class='warn'>passed, bad rows quarantined</span>" in page
    assert "row accounting" in page and "class='ok'>row accounting" in page
    table = page[page.index("<h2>Families</h2>") :]
    assert table.index("popularity") < table.index("biased_mf")  # sorted by NDCG@10


def test_row_accounting_that_does_not_add_up_is_flagged(run_dir: tuple[Path, RunSummary]) -> None:
    run, summary = run_dir
    summary = summary.model_copy(update={"validation": summary.validation | {"source_rows": 9}})
    assert "class='bad'>row accounting" in write_run_report(run, summary).read_text()
