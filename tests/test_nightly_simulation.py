"""Three nights on ml-100k read through a dataset spec whose file grows (85% -> 92% -> 100% of the
rows by time): the refreshed EASE recipe replaces yesterday's champion, a sabotaged configuration
never becomes champion, and a rerun that changed nothing registers nothing."""

from pathlib import Path
from typing import cast

import polars as pl
import pytest

from stages.layout import EvalDir
from stages.results import RunSummary

pytestmark = [pytest.mark.real_data, pytest.mark.flow]

SPEC = """
name: ml-100k-nightly
path: u.data
separator: "\\t"
header: false
feedback: explicit
ids: integer
columns: {user: column_1, item: column_2, rating: column_3, timestamp: column_4}
rating_scale: {min: 1, max: 5, step: 1}
relevant: {min_rating: 4}
"""
FAMILIES = ["popularity", "ease"]


def night(spec: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, ease: dict | None = None) -> RunSummary:
    from flows.retrain import RetrainConfig, retrain

    monkeypatch.setenv("RECSYS_WORKSPACE", str(workspace))
    configs = {"ease": ease} if ease else {}
    # cast: the flow may return its State; called, it gives that State's RunSummary
    return cast(RunSummary, retrain(RetrainConfig(dataset=str(spec), families=FAMILIES, family_configs=configs)))


def test_three_nights_refresh_the_champion_never_promote_sabotage_and_register_nothing_on_a_rerun(
    prefect_server, datasets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from recsys_models.registry import load_model
    from stages.evaluate import evaluate

    rows = pl.read_csv(datasets_dir / "ml-100k" / "u.data", separator="\t", has_header=False)
    rows = rows.sort(rows.columns[3])  # by time
    folder = tmp_path / "export"
    folder.mkdir()
    spec = folder / "ml-100k-nightly.yaml"
    spec.write_text(SPEC)
    workspace = tmp_path / "ws"

    def export(share: float) -> None:  # tonight's file: the oldest `share` of the rows, same path
        rows.head(int(rows.height * share)).write_csv(folder / "u.data", separator="\t", include_header=False)

    champions = []
    for share in (0.85, 0.92, 1.0):
        export(share)
        summary = night(spec, workspace, monkeypatch)
        decision = summary.families["ease"].registration
        print(f"night {share:.0%}: recsys-ease v{decision.version} {decision.reason}")  # shown with -s
        assert summary.families["ease"].metrics["n_eval_users"] >= 500
        if share > 0.85:  # the champion's recipe on tonight's split is tonight's candidate itself
            assert decision.reason.startswith("refresh: the same recipe and code"), decision.reason
        assert decision.promoted, decision.reason
        champions.append(decision.version)
        served = Path(summary.run_dir) / "serve" / "ease" / "model"  # refit on every row: every user
        assert len(load_model(served).users) == rows.head(int(rows.height * share))[rows.columns[0]].n_unique()

    mlflow.set_tracking_uri(summary.mlflow.tracking_uri)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("recsys-ease", "champion").version) == champions[-1]

    sabotaged = night(spec, workspace, monkeypatch, ease={"l2": 1e9})  # far worse: a switch, never promoted
    decision = sabotaged.families["ease"].registration
    print(f"sabotaged: recsys-ease v{decision.version} {decision.reason}")
    assert not decision.promoted and decision.reason.startswith("switch"), decision.reason
    assert "the champion's recipe re-fit on this run's split" in decision.reason
    # fair: the champion side is its recipe trained on this split's training part (night 3's own
    # evaluation, same data, code and seed), not the served champion, which trained on the test rows
    honest = summary.families["ease"].metrics["ndcg_at_10"]
    assert f"vs champion {honest:.4f}" in decision.reason
    run_dir = Path(sabotaged.run_dir)
    leaked = evaluate(run_dir / "split", Path(summary.run_dir) / "serve" / "ease", tmp_path / "leaked")
    # judged on rows it trained on, the served champion is meaningless (its history holds the test items,
    # which it then never recommends): the gate's figure is not that one
    assert abs(EvalDir(leaked).metrics()["ndcg_at_10"] - honest) > 0.05
    assert str(client.get_model_version_by_alias("recsys-ease", "champion").version) == champions[-1]

    versions_before = len(client.search_model_versions("name='recsys-ease'"))
    rerun = night(spec, workspace, monkeypatch)  # same data, code and configuration as night 3
    decision = rerun.families["ease"].registration
    assert decision.promoted is None and decision.reason.startswith("unchanged")
    assert decision.version == champions[-1]
    assert len(client.search_model_versions("name='recsys-ease'")) == versions_before
    assert rerun.overall is not None and rerun.overall.reason.startswith("unchanged")
