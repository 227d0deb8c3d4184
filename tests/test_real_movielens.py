"""P1/P2 reproduced on the real ml-latest-small, through the same stage functions the flow runs; and
the batched split stage on both real datasets equals the in-memory split, for every protocol.

Bands (PROTOCOLS.md, "Quality bands"): wide enough for seed noise, narrow enough to catch a
broken model. Peer figures on this protocol: popularity NDCG@10 0.086 over 28 users;
best peer RMSE 0.907 (LensKit BiasedMF), Surprise BaselineOnly 0.920.
"""

import json
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pytest

from stages.evaluate import evaluate
from stages.ingest import ingest
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from stages.validate import validate

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def p1_run(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("p1")
    ingest_dir = ingest("ml-latest-small", root / "ingest", datasets_dir, root / "downloads")
    split_dir = split(validate(ingest_dir, root / "validate"), root / "split")
    metrics = {}
    for family in ("popularity", "biased_mf"):
        train_dir = train(split_dir, root / "train" / family, family)
        eval_dir = evaluate(split_dir, train_dir, root / "evaluate" / family)
        metrics[family] = EvalDir(eval_dir).metrics()
    return {"root": root, "split_dir": split_dir, "metrics": metrics}


def test_p1_split_counts_match_the_protocol(p1_run: dict) -> None:
    manifest = json.loads((p1_run["split_dir"] / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["train_rows"] + counts["valid_rows"] == 80_668  # floor(0.8 * 100,836)
    assert counts["test"]["test_rows"] == 20_168
    assert p1_run["metrics"]["biased_mf"]["n_eval_rows"] == 1_311  # as the peers report
    assert p1_run["metrics"]["popularity"]["n_eval_users"] == 28


def test_biased_mf_rmse_band(p1_run: dict) -> None:
    metrics = p1_run["metrics"]["biased_mf"]
    test = pl.read_parquet(p1_run["split_dir"] / "test.parquet")
    train = pl.read_parquet(p1_run["split_dir"] / "train.parquet")
    mean_squared_error = cast(float, ((test["rating"] - train["rating"].mean()) ** 2).mean())  # of a Float64 column
    global_mean_rmse = float(np.sqrt(mean_squared_error))
    assert 0.88 <= metrics["rmse"] <= 0.94
    assert metrics["rmse"] < global_mean_rmse - 0.05


def test_popularity_ndcg_band(p1_run: dict) -> None:
    metrics = p1_run["metrics"]["popularity"]
    assert 0.06 <= metrics["ndcg_at_10"] <= 0.11
    assert metrics["ndcg_at_10_ci_low"] < metrics["ndcg_at_10"] < metrics["ndcg_at_10_ci_high"]


@pytest.mark.parametrize("dataset", ["ml-latest-small", "ml-100k"])
def test_batched_split_of_the_real_data_equals_the_in_memory_split(
    dataset: str, datasets_dir: Path, tmp_path: Path
) -> None:
    """MovieLens has many ratings in the same second: the batched split must order and cut them alike."""
    from recsys_models.splitting import PART_NAMES, SplitSettings, protocol_split

    validated = validate(ingest(dataset, tmp_path / "ingest", datasets_dir, tmp_path / "downloads"), tmp_path / "v")
    ratings = pl.read_parquet(validated / "ratings.parquet")
    for protocol in ("temporal-global", "temporal-user", "leave-one-out"):
        settings = SplitSettings(protocol=protocol)
        written = split(validated, tmp_path / protocol, settings, batch_rows=7_000)
        expected = protocol_split(ratings, settings)
        for part in PART_NAMES:
            assert pl.read_parquet(written / f"{part}.parquet").equals(expected.parts[part]), (protocol, part)
