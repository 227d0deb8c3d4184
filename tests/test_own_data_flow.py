"""A team's own data through the whole retrain flow, described by a dataset spec: an implicit
event log with string ids, ISO times, weighted events and repeats; an explicit file with other
column names and a 1-10 scale; a Parquet file with a datetime column; repeat consumption."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pytest

from stages.results import RunSummary

pytestmark = pytest.mark.flow

FAST: dict[str, dict[str, Any]] = {
    "als": {"iterations": 3, "n_factors": 8},
    "ease": {"l2": 10.0},
    "biased_mf": {"epochs": 4, "n_factors": 8},
}
START = datetime(2024, 1, 1, tzinfo=UTC)


def event_log(n_users: int = 60, n_items: int = 40, n_rows: int = 3000, seed: int = 0) -> pl.DataFrame:
    """Users in two taste groups (even and odd items), views and purchases, pairs that recur."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_rows)
    items = (rng.integers(0, n_items // 2, n_rows) * 2 + users % 2) % n_items
    seconds = np.sort(rng.choice(120 * 86_400, n_rows, replace=False))
    return pl.DataFrame(
        {
            "visitor": [f"u{user}" for user in users],
            "sku": [f"SKU-{item:05d}" for item in items],
            "when": [(START + timedelta(seconds=int(s))).isoformat().replace("+00:00", "Z") for s in seconds],
            "kind": np.where(rng.random(n_rows) < 0.7, "view", "purchase"),
            "qty": rng.integers(1, 4, n_rows),
        }
    )


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "source.yaml"
    path.write_text(text)
    return path


def retrain(
    spec: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, families: list[str], **config: Any
) -> RunSummary:
    from flows.retrain import RetrainConfig
    from flows.retrain import retrain as retrain_flow

    monkeypatch.setenv("RECSYS_WORKSPACE", str(workspace))
    chosen = {family: FAST[family] for family in families if family in FAST}
    # cast: the flow may return its State; called, it gives that State's RunSummary
    return cast(
        RunSummary,
        retrain_flow(RetrainConfig(dataset=str(spec), families=families, family_configs=chosen, **config)),
    )


def test_event_log_with_string_ids_iso_times_weights_and_repeats(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    events = event_log()
    events = pl.concat([events, events.head(1).with_columns(pl.lit("wishlist").alias("kind"))])  # unlisted event
    events.write_csv(tmp_path / "events.csv")
    spec = write_spec(
        tmp_path,
        """
name: shop-events
path: events.csv
feedback: implicit
columns: {user: visitor, item: sku, timestamp: when, event: kind, value: qty}
timestamp_format: iso8601
event_weights: {view: 1, purchase: 5}
repeats: sum
""",
    )
    summary = retrain(
        spec, tmp_path / "ws", monkeypatch, ["popularity", "ease", "als", "biased_mf"], protocol="temporal-user"
    )
    run_dir = Path(summary.run_dir)
    assert summary.failed == {}
    assert summary.dataset_name == "shop-events"
    assert set(summary.families) == {"popularity", "ease", "als"}
    assert "implicit" in summary.skipped["biased_mf"]
    counts = summary.validation
    assert counts["source_rows"] == events.height
    assert counts["valid_rows"] + counts["quarantined_rows"] + counts["rejected_at_parse"] == events.height
    quarantine = pl.read_parquet(run_dir / "validate" / "quarantine.parquet")
    assert quarantine.height == 1 and quarantine["event"].to_list() == ["wishlist"]
    pairs = events.select("visitor", "sku").unique().height
    assert counts["interaction_rows"] == pairs  # one row per (user, item)
    for family, entry in summary.families.items():
        assert "rmse" not in entry.metrics, family  # no rating metric without ratings
        assert entry.metrics["n_eval_users"] > 30
    # the planted taste groups: EASE beats popularity
    assert summary.families["ease"].metrics["ndcg_at_10"] > summary.families["popularity"].metrics["ndcg_at_10"]
    recommendations = pl.read_parquet(run_dir / "evaluate" / "ease" / "recommendations.parquet")
    assert recommendations["user_id"].dtype == pl.String and recommendations["user_id"].str.starts_with("u").all()
    assert recommendations["item_id"].str.starts_with("SKU-").all()

    mlflow.set_tracking_uri(summary.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/recsys-ease@champion")
    answer = model.predict(__import__("pandas").DataFrame({"user_id": ["u1", "never-seen"]}), params={"k": 5})
    assert set(answer["user_id"]) == {"u1", "never-seen"}
    assert answer["item_id"].str.startswith("SKU-").all()
    assert answer.loc[answer["user_id"] == "never-seen", "cold_user"].all()
    # u1 is odd; the served model is refit on every row, so the odd items u1 has not bought yet come first
    seen = set(events.filter(pl.col("visitor") == "u1")["sku"])
    unseen_own = {f"SKU-{item:05d}" for item in range(1, 40, 2)} - seen
    assert 0 < len(unseen_own) < 5
    for_u1 = answer.loc[answer["user_id"] == "u1", "item_id"]
    assert set(for_u1.head(len(unseen_own))) == unseen_own and not seen & set(for_u1)


def test_explicit_file_with_other_column_names_and_a_1_to_10_scale(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    n = 2500
    users, items = rng.integers(1, 80, n), rng.integers(1, 60, n)
    frame = pl.DataFrame(
        {
            "customer": users,
            "product": items,
            "stars": (users + items) % 10 + 1,
            "ts": 1_600_000_000_000 + np.arange(n) * 3_600_000,
        }
    ).unique(["customer", "product"])
    frame = pl.concat(
        [frame, frame.head(1).with_columns(pl.lit(11, pl.Int64).alias("stars"), pl.col("product") + 1000)]
    )
    frame.write_csv(tmp_path / "reviews.csv")
    spec = write_spec(
        tmp_path,
        """
name: reviews
path: reviews.csv
feedback: explicit
columns: {user: customer, item: product, rating: stars, timestamp: ts}
timestamp_format: unix_ms
rating_scale: {min: 1, max: 10, step: 1}
""",
    )
    summary = retrain(spec, tmp_path / "ws", monkeypatch, ["popularity", "biased_mf"], protocol="temporal-user")
    assert summary.failed == {}
    assert summary.validation["quarantined_rows"] == 1  # the 11
    metrics = summary.families["biased_mf"].metrics
    assert metrics["relevance_threshold"] == 8.0  # the top quarter of 1-10
    assert 0 < metrics["rmse"] < 4.5


def test_parquet_with_a_datetime_column_and_repeat_consumption(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = event_log(seed=2).with_columns(pl.col("when").str.to_datetime(time_zone="UTC")).drop("kind", "qty")
    events.write_parquet(tmp_path / "plays.parquet")
    spec = write_spec(
        tmp_path,
        """
name: plays
path: plays.parquet
feedback: implicit
columns: {user: visitor, item: sku, timestamp: when}
repeats: count
exclude_seen: false
""",
    )
    summary = retrain(spec, tmp_path / "ws", monkeypatch, ["popularity", "repeat", "ease"], protocol="temporal-user")
    run_dir = Path(summary.run_dir)
    assert summary.failed == {} and set(summary.families) == {"popularity", "repeat", "ease"}
    contract = summary.split["contract"]
    assert contract["shared_pairs"] > 0 and contract["shared_pairs_allowed"]  # repeats to predict, not leaks
    repeat = summary.families["repeat"].metrics
    assert repeat["candidates"].startswith("all items, seen ones included")
    assert repeat["ndcg_at_10"] > summary.families["popularity"].metrics["ndcg_at_10"]
    test = pl.read_parquet(run_dir / "split" / "test.parquet")
    train = pl.read_parquet(run_dir / "split" / "train.parquet")
    assert test.join(train, on=["user_id", "item_id"], how="semi").height > 0


def test_a_run_where_no_user_can_be_evaluated_fails_on_one_line(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cli.main import main

    event_log(seed=3).write_csv(tmp_path / "events.csv")
    spec = write_spec(
        tmp_path,
        """
name: never-relevant
path: events.csv
feedback: implicit
columns: {user: visitor, item: sku, timestamp: when, value: qty}
timestamp_format: iso8601
relevant: {min_weight: 1000}
""",
    )
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    assert main(["--plain", "retrain", "--dataset", str(spec), "--families", "popularity"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no user can be evaluated" in error and "relevant.min_weight=1000" in error


def test_a_bad_spec_stops_before_the_flow_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cli.main import main

    event_log().write_csv(tmp_path / "events.csv")
    spec = write_spec(
        tmp_path,
        "name: x\npath: events.csv\nfeedback: implicit\n"
        "columns: {user: visitor, item: sku, timestamp: time_of_event}\n",
    )
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    assert main(["retrain", "--dataset", str(spec)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "columns.timestamp = 'time_of_event'" in lines[0]
    assert not (tmp_path / "ws" / "runs").exists()  # nothing ran
