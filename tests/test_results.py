"""The result types the flows return and write as summary.json (stages/results.py): the file keeps
each entry's keys, NaN stays NaN, and a summary an older version wrote still loads."""

import json
import math
from pathlib import Path
from typing import Any

from stages.results import BacktestSummary, RunSummary, load_summary

OLDEST_RETRAIN: dict[str, Any] = {  # the keys the first retrain flow wrote, and one a later version might add
    "run_id": "20260101T000000Z-abc123",
    "run_dir": "/ws/runs/20260101T000000Z-abc123",
    "config": {"dataset": "ml-100k"},
    "validation": {"source_rows": 3},
    "split": {"train_rows": 2},
    "families": {
        "ease": {
            "metrics": {"ndcg_at_10": math.nan},
            "registration": {
                "run_id": "r1",
                "registered_model": "recsys-ease",
                "version": "1",
                "promoted": True,
                "reason": "first",
            },
        },
        "popularity": {
            "metrics": {"ndcg_at_10": 0.1},
            "registration": {
                "registered_model": "recsys-popularity",
                "version": "1",
                "promoted": None,
                "reason": "unchanged: v1",
            },
        },
    },
    "failed": {},
    "mlflow": {"run_id": "parent", "tracking_uri": "sqlite:///mlflow.db"},
    "added_by_a_newer_version": 1,
}


def test_a_retrain_summary_writes_back_the_keys_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(OLDEST_RETRAIN))
    summary = RunSummary.load(path)
    assert summary.dataset == "ml-100k" and summary.skipped == {} and summary.overall is None
    assert summary.families["popularity"].registration.promoted is None
    summary.write(tmp_path / "again.json")
    written = json.loads((tmp_path / "again.json").read_text())
    expected = {key: value for key, value in OLDEST_RETRAIN.items() if key != "added_by_a_newer_version"}
    assert list(written) == list(expected)
    for family, entry in expected["families"].items():  # no champion_before, no run_id where there was none
        assert written["families"][family]["registration"] == entry["registration"]
    assert math.isnan(written["families"]["ease"]["metrics"]["ndcg_at_10"])  # NaN, not null
    assert isinstance(load_summary(path), RunSummary)


def test_a_backtest_summary_is_told_apart_by_its_table(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    backtest: dict[str, Any] = {
        "run_id": "x",
        "run_dir": "/ws/runs/x",
        "config": {"dataset": "synthetic"},
        "windows": [],
        "table": "t.parquet",
        "table_csv": "t.csv",
        "plot": None,
        "families": {"popularity": {"windows_ok": 2}},
        "failed": {},
        "mlflow": {"run_id": "parent", "tracking_uri": "sqlite:///mlflow.db"},
    }
    path.write_text(json.dumps(backtest))
    summary = load_summary(path)
    assert isinstance(summary, BacktestSummary) and summary.notes == [] and summary.dataset == "synthetic"
    assert summary.families["popularity"].windows_ok == 2
