"""two_tower and two_tower_rerank: the ANN index, the trainer's pieces, known answers on clustered
data, serving from the index (in process and through a pyfunc loaded in a fresh process)."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models.features import ItemFeatures
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import load_model
from recsys_models.two_tower import (
    AnnConfig,
    TwoTower,
    TwoTowerConfig,
    VectorIndex,
    recall_at_k,
)
from recsys_models.two_tower.model import INDEX_FILE
from recsys_models.two_tower.network import TwoTowerNetwork
from recsys_models.two_tower.rerank import TwoTowerRerank, TwoTowerRerankConfig
from recsys_models.two_tower.trainer import TrainerSettings, in_batch_loss, training_data
from stages.results import RunSummary

N_CLUSTERS, USERS_PER_CLUSTER, ITEMS_PER_CLUSTER, ITEMS_PER_USER = 4, 50, 15, 5
FAST: dict[str, Any] = {"dimension": 16, "epochs": 20, "batch_size": 128, "temperature": 0.5, "learning_rate": 0.02}


def clustered_vectors(n: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dimension))
    vectors = centres[rng.integers(20, size=n)] + rng.normal(0, 0.3, (n, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_index_finds_the_exact_neighbours(kind: Literal["exact", "hnsw", "ivf"], tmp_path: Path) -> None:
    items, queries = clustered_vectors(3000), clustered_vectors(50, seed=1)
    index = VectorIndex.build(items, AnnConfig(kind=kind, ivf_nprobe=8))
    ids, scores = index.search(queries, 20)
    truth = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :20]
    assert ids.shape == (50, 20)
    assert recall_at_k(ids, truth) >= (1.0 if kind == "exact" else 0.9)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, ids, 1), rtol=1e-4, atol=1e-5)
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss", index.config)
    np.testing.assert_array_equal(loaded.search(queries, 20)[0], ids)


def test_index_rejects_bad_input_and_caps_k() -> None:
    index = VectorIndex.build(clustered_vectors(30), AnnConfig(kind="hnsw", hnsw_ef_search=4))
    assert index.search(clustered_vectors(2, seed=3), 100)[0].shape == (2, 30)  # k > efSearch and > n
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.zeros((1, 5), dtype=np.float32), 3)
    with pytest.raises(ValueError, match="empty"):
        VectorIndex.build(np.zeros((0, 4)), AnnConfig())


def test_recall_counts_shared_ids() -> None:
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, -1]]), np.array([[3, 2, 9], [4, 6, 7]])) == pytest.approx(
        (2 / 3 + 1 / 3) / 2
    )


def test_recent_items_only_look_back() -> None:
    # user 0: items 5 (t=1), 3 (t=2), 4 (t=3); user 1: item 2 (t=1); padding is n_items = 6
    users, items, times = np.array([0, 1, 0, 0]), np.array([3, 2, 5, 4]), np.array([2, 1, 1, 3])
    data = training_data(users, items, times, n_users=2, n_items=6, history_length=2, device="cpu")
    np.testing.assert_array_equal(data.history[torch.arange(4)], [[5, 6], [6, 6], [6, 6], [3, 5]])
    np.testing.assert_array_equal(data.history[torch.tensor([3, 0])], [[3, 5], [5, 6]])  # any batch order
    np.testing.assert_array_equal(data.user_history, [[4, 3], [2, 6]])


def test_in_batch_loss_masks_duplicates_and_applies_the_log_q_correction() -> None:
    torch.manual_seed(0)
    network = TwoTowerNetwork(3, 5, 4, temperature=0.5, item_bias=False, init_std=0.5)
    users, items = torch.tensor([0, 1, 2]), torch.tensor([1, 1, 3])
    history = torch.full((3, 2), 5)
    log_frequency = torch.log(torch.tensor([0.1, 0.5, 0.1, 0.2, 0.1]))
    settings = TrainerSettings("two_tower", 4, 0.5, False, 0.5, 3, 0, True, 0.01, 0.0, 3)
    loss = in_batch_loss(network, users, items, history, torch.empty(0, dtype=torch.long), log_frequency, settings)
    logits = network.query_vectors(users, history) @ network.item_vectors()[items].T
    logits = logits - torch.log(3 * log_frequency.exp())[items]
    logits[0, 1] = logits[1, 0] = -torch.inf  # item 1 is the positive of rows 0 and 1: not each other's negative
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def clustered_interactions(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Users interact only with items of their own cluster; returns data, user and item clusters."""
    rng = np.random.default_rng(seed)
    n_users, n_items = N_CLUSTERS * USERS_PER_CLUSTER, N_CLUSTERS * ITEMS_PER_CLUSTER
    user_cluster, item_cluster = np.arange(n_users) % N_CLUSTERS, np.arange(n_items) % N_CLUSTERS
    user_list, item_list = [], []
    for cluster in range(N_CLUSTERS):
        own = np.flatnonzero(item_cluster == cluster)
        for user in np.flatnonzero(user_cluster == cluster):
            user_list += [user] * ITEMS_PER_USER
            item_list += list(rng.choice(own, ITEMS_PER_USER, replace=False))
    users, items = np.array(user_list), np.array(item_list)
    data = Interactions(
        users,
        items,
        np.full(users.size, 4.0, dtype=np.float32),
        rng.permutation(users.size),
        IdVocabulary(np.arange(n_users) + 1),
        IdVocabulary(np.arange(n_items) + 100),
    )
    return data, user_cluster, item_cluster


def cluster_features(items: IdVocabulary, item_cluster: np.ndarray) -> ItemFeatures:
    matrix = sp.csr_matrix((np.ones(item_cluster.size, np.float32), (np.arange(item_cluster.size), item_cluster)))
    return ItemFeatures(items, matrix, np.array([f"genre:g{c}" for c in range(N_CLUSTERS)]))


@pytest.fixture(scope="module")
def clustered() -> tuple[Interactions, np.ndarray, np.ndarray]:
    return clustered_interactions()


@pytest.fixture(scope="module")
def trained(clustered) -> TwoTower:
    data, _, item_cluster = clustered
    config = TwoTowerConfig(**FAST)
    features = cluster_features(data.items, item_cluster)
    return TwoTower(config, TrainingOptions(seed=0, device="cpu")).fit(data, None, features)


@pytest.mark.parametrize("with_features", [True, False])
def test_users_retrieve_items_of_their_own_cluster(clustered, with_features: bool) -> None:
    data, user_cluster, item_cluster = clustered
    features = cluster_features(data.items, item_cluster) if with_features else None
    model = TwoTower(TwoTowerConfig(**FAST), TrainingOptions(seed=1, device="cpu")).fit(data, None, features)
    items, _ = model.recommend(np.arange(data.n_users), k=5)
    assert (item_cluster[items] == user_cluster[:, None]).mean() >= 0.95
    random_share = 1 / N_CLUSTERS
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    assert random_share < 0.5  # the band above is far from what a model that learnt nothing reaches


def test_recommendations_come_from_the_index_and_match_exact_search(trained: TwoTower, monkeypatch) -> None:
    calls: list[int] = []
    search = trained.index.search

    def counted_search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(k)
        return search(queries, k)

    monkeypatch.setattr(trained.index, "search", counted_search)
    users = np.arange(len(trained.users))
    served_items, served_scores = trained.recommend(users, k=10)
    assert calls, "recommend did not ask the index"
    exact_items, exact_scores = trained.recommend(users, k=10, exact=True)
    assert recall_at_k(served_items, exact_items) == 1.0  # 60 items: HNSW finds them all
    np.testing.assert_allclose(served_scores, exact_scores, rtol=1e-5)
    seen = trained.seen
    assert not any(set(row) & set(seen[user].indices) for user, row in enumerate(served_items))


def test_similar_items_share_the_cluster(trained: TwoTower, clustered) -> None:
    _, _, item_cluster = clustered
    items = np.arange(trained.n_items)
    similar, scores = trained.similar_items(items, k=5)
    assert not (similar == items[:, None]).any()
    assert (item_cluster[similar] == item_cluster[:, None]).mean() >= 0.9
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_saved_model_carries_its_index(trained: TwoTower, tmp_path: Path) -> None:
    trained.save(tmp_path / "model")
    assert (tmp_path / "model" / INDEX_FILE).stat().st_size > 0
    loaded = cast(TwoTower, load_model(tmp_path / "model"))  # load_model is typed as any Recommender
    users = np.arange(len(trained.users))
    np.testing.assert_array_equal(loaded.recommend(users, 7)[0], trained.recommend(users, 7)[0])
    np.testing.assert_array_equal(loaded.similar_items(np.arange(4), 3)[0], trained.similar_items(np.arange(4), 3)[0])


def test_rerank_orders_retrieved_candidates_by_the_ranker(clustered, tmp_path: Path) -> None:
    data, user_cluster, item_cluster = clustered
    config = TwoTowerRerankConfig(
        retriever=TwoTowerConfig(**FAST), ranker="ease", ranker_config={"l2": 5.0}, n_candidates=12
    )
    model = TwoTowerRerank(config, TrainingOptions(seed=0, device="cpu")).fit(data)
    users = np.arange(data.n_users)
    items, scores = model.recommend(users, k=5)
    candidates = model.candidates(users, 5)
    assert all(set(row) <= set(pool) for row, pool in zip(items, candidates, strict=True))
    ranker_scores = np.take_along_axis(model.ranker.score(users), items, 1)
    np.testing.assert_allclose(scores, ranker_scores, rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert (item_cluster[items] == user_cluster[:, None]).mean() >= 0.95
    model.save(tmp_path / "rerank")
    np.testing.assert_array_equal(load_model(tmp_path / "rerank").recommend(users, 5)[0], items)


def test_rerank_config_rejects_an_unknown_ranker() -> None:
    with pytest.raises(ValueError, match="'nope' cannot be a part"):
        TwoTowerRerankConfig(ranker="nope")
    with pytest.raises(ValueError, match="another family"):
        TwoTowerRerankConfig(ranker="two_tower")


PYFUNC_CHECK = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
answer = model.predict(pd.DataFrame({"user_id": [int(u) for u in sys.argv[2:]]}), params={"k": 4})
inner = model.unwrap_python_model().model
print(json.dumps({"rows": answer[["user_id", "item_id", "rank", "cold_user"]].to_dict("records"),
                  "index": inner.index.config.kind, "vectors": inner.index.n_vectors}))
"""


@pytest.mark.flow
def test_pyfunc_serves_top_k_from_the_index_in_a_fresh_process(trained: TwoTower, tmp_path: Path) -> None:
    import mlflow
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    from tasks.tracking import PYFUNC_FILE

    trained.save(tmp_path / "model")
    signature = ModelSignature(
        inputs=Schema([ColSpec("long", "user_id")]), params=ParamSchema([ParamSpec("k", "long", 10)])
    )
    mlflow.pyfunc.save_model(
        path=str(tmp_path / "pyfunc"),
        python_model=str(PYFUNC_FILE),
        artifacts={"model_dir": str(tmp_path / "model")},
        signature=signature,
        pip_requirements=["faiss-cpu"],
    )
    assert list((tmp_path / "pyfunc" / "artifacts").rglob(INDEX_FILE)), "the index file must travel with the model"
    known = [int(raw) for raw in trained.users.ids[:3]]
    result = subprocess.run(
        [sys.executable, "-c", PYFUNC_CHECK, str(tmp_path / "pyfunc"), *map(str, known), "987654"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["index"] == "hnsw" and answer["vectors"] == trained.n_items
    expected = trained.items.ids[trained.recommend(trained.users.index_of(np.array(known)), 4)[0]]
    for position, user in enumerate(known):
        rows = [row for row in answer["rows"] if row["user_id"] == user]
        assert [row["item_id"] for row in rows] == list(expected[position])
        assert [row["rank"] for row in rows] == [1, 2, 3, 4] and not any(row["cold_user"] for row in rows)
    assert all(row["cold_user"] for row in answer["rows"] if row["user_id"] == 987654)


@pytest.mark.flow
def test_both_families_run_in_the_retrain_flow(prefect_server, tmp_path: Path, monkeypatch) -> None:
    import polars as pl

    from flows.retrain import RetrainConfig, retrain
    from recsys_models.testing import low_rank_ratings

    ratings = tmp_path / "ratings.parquet"
    low_rank_ratings(n_users=80, n_items=50, density=0.3).with_columns(
        (pl.col("timestamp") * 3600 + 1_500_000_000).alias("timestamp")
    ).write_parquet(ratings)
    monkeypatch.setenv("RECSYS_WORKSPACE", str(tmp_path / "ws"))
    fast = {"epochs": 3, "dimension": 8, "batch_size": 256}
    summary = cast(  # the flow may return its State; called, it gives that State's RunSummary
        RunSummary,
        retrain(
            RetrainConfig(
                dataset=str(ratings),
                families=["two_tower", "two_tower_rerank"],
                family_configs={"two_tower": fast, "two_tower_rerank": {"retriever": fast}},
            )
        ),
    )
    assert set(summary.families) == {"two_tower", "two_tower_rerank"}
    for family in ("two_tower", "two_tower_rerank"):
        assert np.isfinite(summary.families[family].metrics["ndcg_at_10"])
        assert summary.families[family].registration.version == "1"
    logged = list((tmp_path / "ws" / "mlflow" / "artifacts").rglob(INDEX_FILE))
    assert len(logged) == 2, "each family's logged model carries its faiss index"
