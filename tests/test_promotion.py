"""The promotion gate against a real (SQLite) MLflow registry; champions are re-scored by a stub."""

import json
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stages.layout import EvalDir
from tasks import promotion
from tasks.promotion import CHALLENGER, CHAMPION, PREVIOUS, PromotionGate, decide, promote

NAME = "recsys-test"
USERS = np.arange(1, 41)


def eval_dir(root: Path, label: str, ndcg: np.ndarray) -> Path:
    """An evaluation folder with per-user NDCG values and their mean."""
    folder = root / label
    folder.mkdir(parents=True)
    pl.DataFrame({"user_id": USERS, "ndcg_at_10": ndcg}).write_parquet(folder / "per_user.parquet")
    EvalDir(folder).metrics_file.write_text(json.dumps({"ndcg_at_10": float(ndcg.mean()), "n_eval_users": len(ndcg)}))
    return folder


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model(NAME)
    scores: dict[str, Path] = {}  # version -> its evaluation on "this run's split"
    rescored: list[str] = []

    def fake_score_champion(name: str, version: str, split_dir: Path, out_dir: Path, items_dir=None) -> Path:
        rescored.append(version)
        return scores[version]

    monkeypatch.setattr(promotion, "score_champion", fake_score_champion)

    def add_version(label: str, ndcg: np.ndarray, protocol: str = "temporal-global") -> tuple[str, Path]:
        tags = {"dataset": "ml-latest-small", "protocol": protocol}
        version = str(client.create_model_version(NAME, source=str(tmp_path), tags=tags).version)
        scores[version] = eval_dir(tmp_path / "evals", f"{label}-v{version}", ndcg)
        return version, scores[version]

    return client, add_version, rescored, tmp_path


def run_gate(client, version: str, folder: Path, tmp_path: Path, gate: PromotionGate = PromotionGate()):
    return promote(client, NAME, version, folder, tmp_path, tmp_path / "work", gate, tmp_path / "promotion.lock")


def aliases(client) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_worse_model_keeps_the_champion_and_better_one_is_promoted(registry) -> None:
    client, add_version, rescored, tmp_path = registry
    base = np.linspace(0.1, 0.5, USERS.size)

    first, folder = add_version("first", base)
    assert run_gate(client, first, folder, tmp_path).promoted
    assert aliases(client) == {CHAMPION: first, CHALLENGER: first}

    worse, folder = add_version("worse", base - 0.05)
    decision = run_gate(client, worse, folder, tmp_path)
    assert not decision.promoted and rescored == [first]
    assert aliases(client) == {CHAMPION: first, CHALLENGER: worse}
    tags = client.get_model_version(NAME, worse).tags
    assert tags["promotion_decision"] == "kept_champion"
    assert "not better than the champion beyond noise" in tags["promotion_reason"]

    noisy, folder = add_version("noisy", base + np.where(USERS % 2 == 0, 0.03, -0.03))  # same mean
    assert not run_gate(client, noisy, folder, tmp_path).promoted

    better, folder = add_version("better", base + 0.05)
    decision = run_gate(client, better, folder, tmp_path)
    assert decision.promoted and decision.comparison["ci_low"] > 0
    assert aliases(client) == {CHAMPION: better, CHALLENGER: better, PREVIOUS: first}
    assert client.get_model_version(NAME, better).tags["promotion_decision"] == "promoted"


def test_a_manual_rollback_is_what_the_next_run_compares_against(registry) -> None:
    client, add_version, rescored, tmp_path = registry
    base = np.linspace(0.1, 0.5, USERS.size)
    old, folder = add_version("old", base)
    run_gate(client, old, folder, tmp_path)
    new, folder = add_version("new", base + 0.1)
    run_gate(client, new, folder, tmp_path)
    client.set_registered_model_alias(NAME, CHAMPION, old)  # a person rolls back in the UI
    candidate, folder = add_version("candidate", base + 0.02)
    rescored.clear()
    run_gate(client, candidate, folder, tmp_path)
    assert rescored == [old]


def test_minimum_quality_blocks_even_a_first_version(registry) -> None:
    client, add_version, _, tmp_path = registry
    version, folder = add_version("empty", np.zeros(USERS.size))
    decision = run_gate(client, version, folder, tmp_path)
    assert not decision.promoted and "below the minimum quality" in decision.reason
    assert CHAMPION not in aliases(client)
    version, folder = add_version("few-users", np.full(USERS.size, 0.3))
    assert not run_gate(client, version, folder, tmp_path, PromotionGate(min_users=100)).promoted


def test_concurrent_runs_leave_consistent_aliases(registry) -> None:
    client, add_version, _, tmp_path = registry
    base = np.linspace(0.1, 0.5, USERS.size)
    first, folder = add_version("first", base)
    run_gate(client, first, folder, tmp_path)
    contenders = [add_version(f"contender{i}", base + 0.05 * (i + 1)) for i in range(2)]
    threads = [threading.Thread(target=run_gate, args=(client, v, f, tmp_path)) for v, f in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = aliases(client)
    best = contenders[1][0]
    # whichever ran first, the stronger contender ends as champion and previous_champion is a real predecessor
    assert final[CHAMPION] == best
    assert final[PREVIOUS] in {first, contenders[0][0]}


def test_decide_reports_the_comparison() -> None:
    per_user = pl.DataFrame({"user_id": USERS, "ndcg_at_10": np.full(USERS.size, 0.2)})
    promoted, reason, figures = decide(
        {"ndcg_at_10": 0.3, "n_eval_users": 40},
        per_user.with_columns(pl.col("ndcg_at_10") + 0.1),
        per_user,
        PromotionGate(),
    )
    assert figures is not None  # past the gate's minimums: the comparison's figures come back
    assert promoted and figures["n_users"] == 40 and figures["difference"] == pytest.approx(0.1)
    assert "beats the champion beyond noise" in reason


def test_manual_promotion_and_rollback(registry) -> None:
    from tasks.registry_admin import list_models, roll_back, set_champion

    client, add_version, _, tmp_path = registry
    base = np.linspace(0.1, 0.5, USERS.size)
    first, folder = add_version("first", base)
    run_gate(client, first, folder, tmp_path)
    second, _ = add_version("second", base)
    lock = tmp_path / "promotion.lock"
    assert set_champion(client, NAME, second, lock) == first
    assert aliases(client)[CHAMPION] == second and aliases(client)[PREVIOUS] == first
    (row,) = list_models(client)
    assert (row.name, row.latest_version, row.aliases[CHAMPION]) == (NAME, second, second)
    assert "by hand" in row.champion_reason
    assert roll_back(client, NAME, lock) == first
    # rollback walks back through the history: the first champion has no earlier one to point to
    assert aliases(client)[CHAMPION] == first and PREVIOUS not in aliases(client)


def test_a_champion_from_another_protocol_is_never_compared(registry) -> None:
    client, add_version, rescored, tmp_path = registry
    base = np.linspace(0.1, 0.5, USERS.size)
    first, folder = add_version("p2", base)
    run_gate(client, first, folder, tmp_path)
    other, folder = add_version("p4", base + 0.2, protocol="temporal-user")
    decision = run_gate(client, other, folder, tmp_path)
    assert not decision.promoted and rescored == []
    assert "another protocol" in decision.reason and aliases(client)[CHAMPION] == first


def per_user(values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"user_id": np.arange(values.size), "ndcg_at_10": values})


MANY = np.random.default_rng(0).uniform(0.2, 0.4, 2000)  # 2,000 users: a powered comparison


def test_a_refresh_slightly_worse_within_the_margin_is_promoted_and_beyond_it_is_held_back() -> None:
    gate = PromotionGate(non_inferiority_margin=0.05)  # 5% of the champion's ~0.3 = 0.015
    champion = per_user(MANY)
    promoted, reason, figures = decide(
        {"ndcg_at_10": 0.295, "n_eval_users": 2000}, per_user(MANY - 0.005), champion, gate, kind="refresh"
    )
    assert figures is not None  # past the gate's minimums: the comparison's figures come back
    assert promoted and reason.startswith("refresh: not worse") and figures["kind"] == "refresh"
    promoted, reason, _ = decide(
        {"ndcg_at_10": 0.27, "n_eval_users": 2000}, per_user(MANY - 0.03), champion, gate, kind="refresh"
    )
    assert not promoted and reason.startswith("refresh held back")
    # the same small loss as a switch (another family or configuration) is never promoted
    promoted, reason, _ = decide({"ndcg_at_10": 0.295, "n_eval_users": 2000}, per_user(MANY - 0.005), champion, gate)
    assert not promoted and reason.startswith("switch: not better")


def test_an_underpowered_comparison_never_switches() -> None:
    noise = np.random.default_rng(1).normal(0, 0.2, 30)
    candidate, champion = per_user(0.3 + 0.05 + noise), per_user(np.full(30, 0.3))
    promoted, reason, figures = decide({"ndcg_at_10": 0.35, "n_eval_users": 30}, candidate, champion, PromotionGate())
    assert figures is not None  # past the gate's minimums: the comparison's figures come back
    assert figures["underpowered"] and figures["minimum_detectable_effect"] > figures["margin"]
    assert not promoted and reason.startswith("switch not allowed: the comparison is underpowered")
    assert "minimum detectable effect" in reason


def test_a_champion_must_beat_the_popularity_baseline_of_the_run() -> None:
    baseline = per_user(MANY)
    promoted, reason, _ = decide(
        {"ndcg_at_10": 0.3, "n_eval_users": 2000}, per_user(MANY), None, PromotionGate(), baseline_per_user=baseline
    )
    assert not promoted and reason.startswith("not above the popularity baseline")
    promoted, reason, _ = decide(
        {"ndcg_at_10": 0.33, "n_eval_users": 2000},
        per_user(MANY + 0.03),
        None,
        PromotionGate(),
        baseline_per_user=baseline,
    )
    assert promoted and reason.startswith("first version")


def test_guardrails_block_a_collapse_in_coverage_or_a_rise_in_popularity() -> None:
    better = {"ndcg_at_10": 0.35, "n_eval_users": 2000}
    champion_figures = {"coverage_at_10": 0.30, "avg_popularity_at_10": 100.0}
    promoted, reason, _ = decide(
        better | {"coverage_at_10": 0.10, "avg_popularity_at_10": 100.0},
        per_user(MANY + 0.05),
        per_user(MANY),
        PromotionGate(),
        champion=champion_figures,
    )
    assert not promoted and "guardrail: coverage@10 falls" in reason
    promoted, reason, _ = decide(
        better | {"coverage_at_10": 0.30, "avg_popularity_at_10": 200.0},
        per_user(MANY + 0.05),
        per_user(MANY),
        PromotionGate(),
        champion=champion_figures,
    )
    assert not promoted and "mean recommended popularity rises" in reason
    promoted, reason, _ = decide(
        better | champion_figures, per_user(MANY + 0.05), per_user(MANY), PromotionGate(), champion=champion_figures
    )
    assert promoted and reason.startswith("switch: beats the champion")


def test_the_same_recipe_is_a_refresh_and_another_is_a_switch(registry) -> None:
    client, add_version, _, tmp_path = registry
    versions = [add_version(f"v{i}", MANY[:40])[0] for i in range(3)]
    for version, recipe in zip(versions, ["abc", "abc", "xyz"], strict=True):
        client.set_model_version_tag(NAME, version, promotion.RECIPE_TAG, recipe)
    assert promotion.change_kind(client, NAME, versions[1], versions[0]) == "refresh"
    assert promotion.change_kind(client, NAME, versions[2], versions[0]) == "switch"
