"""The stacked family: a known answer (one part is the planted truth, and the ranker learns to rely
on it), persistence, its configuration's checks, and a quality band on real data through the stages
the flow runs. The family contract tests (tests/test_models_contract.py) cover it with FAST_CONFIGS."""

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from recsys_models.base import Recommender
from recsys_models.history import History
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.leaf_families import LEAF_FAMILIES
from recsys_models.options import TrainingOptions
from recsys_models.registry import FAMILIES, OPT_IN_FAMILIES, default_families, load_model, make_config
from recsys_models.stacked import RankerConfig, Stacked, StackedConfig
from recsys_models.stacked.candidates import generate_candidates
from recsys_models.stacked.model import user_tail
from recsys_models.testing import FAST_CONFIGS

N_USERS, N_ITEMS, PER_USER, SEED = 150, 90, 24, 7


def true_preference(seed: int, n_users: int, n_items: int) -> np.ndarray:
    """The hidden (user, item) affinity every interaction below is drawn from, by raw id - 1."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n_users, 3)) @ rng.normal(0, 1, (3, n_items)) + rng.normal(0, 1.0, (n_users, n_items))


class PlantedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = SEED


class Planted(Recommender):
    """A part that knows the truth: it scores by the generator's own affinity."""

    family = "planted"
    config_type = PlantedConfig
    config: PlantedConfig

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        truth = true_preference(self.config.seed, N_USERS, N_ITEMS)
        self._scores = truth[np.ix_(self.users.ids - 1, self.items.ids - 1)].astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self._scores[self._check_users(user_indices)]

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self._scores}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._scores = state["scores"]


def planted_split() -> tuple[Interactions, Interactions, Interactions]:
    """Each user picks PER_USER items with probability rising steeply with the true affinity, in a
    random order over time; the last 20% of each user's rows are test, the 10% before them valid."""
    rng = np.random.default_rng(SEED)
    truth = true_preference(SEED, N_USERS, N_ITEMS)
    user_list, item_list = [], []
    for user in range(N_USERS):
        weight = np.exp(2.5 * (truth[user] - truth[user].max()))
        chosen = rng.choice(N_ITEMS, PER_USER, replace=False, p=weight / weight.sum())
        user_list += [user] * PER_USER
        item_list += list(chosen)
    users, items = np.array(user_list), np.array(item_list)
    timestamp = rng.permutation(users.size).astype(np.int64) * 3600
    vocab_users, vocab_items = IdVocabulary(np.arange(1, N_USERS + 1)), IdVocabulary(np.arange(1, N_ITEMS + 1))
    everything = Interactions(
        users, items, np.full(users.size, 5.0, dtype=np.float32), timestamp, vocab_users, vocab_items
    )
    history, test = user_tail(everything, 0.2)
    train, valid = user_tail(history, 0.125)
    return train, valid, test


@pytest.fixture(scope="module")
def planted_family() -> Any:
    """`planted` as a leaf family (what a stacked part may be) for the module's tests."""
    LEAF_FAMILIES[Planted.family] = Planted
    yield Planted
    del LEAF_FAMILIES[Planted.family]


def hit_rate(model: Recommender, test: Interactions, k: int = 10) -> float:
    top, _ = model.recommend(np.arange(test.n_users), k)
    relevant = test.tocsr("binary")
    return float(
        np.mean(
            [
                len(set(row) & set(relevant[user].indices)) / max(relevant[user].nnz, 1)
                for user, row in enumerate(top)
                if relevant[user].nnz
            ]
        )
    )


def test_the_ranker_learns_to_rely_on_the_planted_truth(planted_family: Any) -> None:
    train, valid, test = planted_split()
    config = StackedConfig(
        parts={"planted": {}, "popularity": {}, "item_knn": {}},
        n_candidates=30,
        relevance_threshold=None,
        boost_from_best_part=False,
        ranker=RankerConfig(n_estimators=200, min_data_in_leaf=20),
    )
    model = Stacked(config, TrainingOptions(seed=0)).fit(train, valid)
    importances = model.importances()
    planted = sum(share for name, share in importances.items() if name.startswith("planted_"))
    for other in ("popularity", "item_knn"):
        assert planted > 3 * sum(share for name, share in importances.items() if name.startswith(f"{other}_"))
    assert planted > 0.5
    truth = model.parts["planted"]
    assert hit_rate(model, test) >= hit_rate(truth, test) - 0.03
    assert hit_rate(model, test) > hit_rate(model.parts["item_knn"], test) + 0.05
    stacked_top, _ = model.recommend(np.arange(N_USERS), 5)
    truth_top, _ = truth.recommend(np.arange(N_USERS), 5)
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(stacked_top, truth_top, strict=True)])
    assert overlap >= 0.6
    assert model.candidate_recall["all"] >= model.candidate_recall["planted"] > model.candidate_recall["popularity"]


def test_boosting_starts_from_the_best_part(planted_family: Any) -> None:
    train, valid, _ = planted_split()
    config = StackedConfig(
        parts={"popularity": {}, "planted": {}},
        n_candidates=20,
        relevance_threshold=None,
        ranker=RankerConfig(n_estimators=20, min_data_in_leaf=20),
    )
    model = Stacked(config, TrainingOptions(seed=0)).fit(train, valid)
    assert model._ranker is not None  # set by fit
    assert model._ranker.base == "planted_score_z"


@pytest.fixture(scope="module")
def fast_model() -> tuple[Stacked, Interactions]:
    train, valid, _ = planted_split()
    config = make_config("stacked", FAST_CONFIGS["stacked"])
    return Stacked(config, TrainingOptions(seed=1)).fit(train, valid), train


def test_save_and_load_give_identical_recommendations(fast_model, tmp_path: Path) -> None:
    model, _ = fast_model
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "ranker.txt").read_text().startswith("tree")
    assert sorted(path.name for path in (tmp_path / "model" / "parts").iterdir()) == ["ease", "item_knn", "popularity"]
    loaded = cast(Stacked, load_model(tmp_path / "model"))  # load_model is typed as any Recommender
    users = np.arange(N_USERS)
    for got, expected in zip(loaded.recommend(users, 10), model.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert loaded.importances() == pytest.approx(model.importances())
    assert loaded.candidate_recall == model.candidate_recall


def test_model_card_and_run_report_show_candidate_recall_and_importances(fast_model, tmp_path: Path) -> None:
    from reporting.report import _learned_rankers
    from stages.layout import RunDir
    from stages.model_card import render_model_card

    model, _ = fast_model
    run_dir = tmp_path / "run"
    model.save(RunDir(run_dir).serve("stacked") / "model")
    top_feature = next(iter(model.importances()))
    manifest = {
        "parameters": {"config": {"n_candidates": 10}, "seed": 1},
        "counts": {"users": 1, "items": 1, "fit_seconds": 1.0},
    }
    card = render_model_card(
        "stacked", {"ndcg_at_10": 0.1}, manifest, {}, {}, None, RunDir(run_dir).serve("stacked") / "model"
    )
    assert "## Learned ranker" in card and "candidate_recall_at_10: " in card and f"| {top_feature} |" in card
    assert "## Learned ranker" not in render_model_card("ease", {"ndcg_at_10": 0.1}, manifest, {}, {})
    section = _learned_rankers(run_dir, ["ease", "stacked"])
    assert "<h3>stacked</h3>" in section and top_feature in section and "ease" not in section.split("<h3>")[0]


def test_candidates_are_the_union_of_the_parts_top_n(fast_model) -> None:
    model, _ = fast_model
    users, depth = np.arange(6), model.config.n_candidates
    candidates = model.candidates(users)
    for position, user in enumerate(users):
        rows = slice(candidates.offsets[position], candidates.offsets[position + 1])
        own = candidates.items[rows]
        assert not set(own) & set(model.seen[user].indices) and candidates.proposed[rows].any(axis=1).all()
        for index, part in enumerate(model.parts.values()):
            scores = part.score(np.array([user]))[0]
            scores[model.seen[user].indices] = -np.inf
            proposed = own[candidates.proposed[rows, index]]
            assert proposed.size == depth  # ties broken by item index
            assert set(np.flatnonzero(scores > scores[proposed].min())) <= set(proposed)
            np.testing.assert_array_equal(candidates.scores[rows, index], part.score(np.array([user]))[0][own])
    assert candidates.ranks.min() >= 1


def test_seen_items_are_candidates_only_when_asked(fast_model) -> None:
    model, train = fast_model
    seen = model.seen
    users = np.arange(5)
    with_seen = generate_candidates(users, [part.score(users) for part in model.parts.values()], None, 200)
    assert any(seen[u, i] for u, i in zip(with_seen.users[with_seen.user_rows], with_seen.items, strict=True))


def own_histories(model: Stacked, data: Interactions, users: np.ndarray) -> list[History]:
    """Each user's rows of `data` as a history with ratings, timestamps and their id."""
    rows = [np.flatnonzero(data.user_idx == user) for user in users]
    return [
        History(model.items.ids[data.item_idx[r]], data.rating[r], data.timestamp[r], int(model.users.ids[u]))
        for u, r in zip(users, rows, strict=True)
    ]


def test_a_history_is_its_own_user_context(fast_model) -> None:
    model, _ = fast_model
    stats = model._stats
    items = model.items.ids[[0, 3, 5]]
    batch = model.history_batch([History(items, timestamps=[10, 500, 40]), History(items)])
    count, last = stats.history_context(batch)
    assert count.tolist() == [3.0, 3.0] and last.tolist() == [500, int(stats.now)]  # untimed: current


def test_own_history_gives_trained_scores_with_seen_candidates() -> None:
    train, valid, _ = planted_split()
    config = StackedConfig(
        parts={"repeat": {}, "item_knn": {}, "popularity": {}},
        seen_candidates=True,
        n_candidates=10,
        relevance_threshold=None,
        ranker=RankerConfig(n_estimators=20, min_data_in_leaf=5),
    )
    model = Stacked(config, TrainingOptions(seed=1)).fit(train, valid)
    users = np.arange(0, N_USERS, 5)
    from_history = model.score_history(model.history_batch(own_histories(model, train.concat(valid), users)))
    trained = model.score(users)
    np.testing.assert_allclose(from_history, trained, rtol=1e-5, atol=1e-5 * float(np.abs(trained).max()))
    candidates = model.candidates(users)
    assert any(model.seen[users[r], i] for r, i in zip(candidates.user_rows, candidates.items, strict=True))


def test_config_rejects_unknown_parts_keys_and_a_seen_part_without_seen_candidates() -> None:
    with pytest.raises(ValueError, match="nope"):
        StackedConfig(parts={"nope": {}})
    with pytest.raises(ValueError, match="l3"):
        StackedConfig(parts={"ease": {"l3": 1.0}})
    with pytest.raises(ValueError, match="seen_candidates"):
        StackedConfig(parts={"repeat": {}})
    with pytest.raises(ValueError, match="cannot be a part"):
        StackedConfig(parts={"stacked": {}})
    assert "repeat" in StackedConfig(seen_candidates=True).part_configs()
    assert "repeat" not in StackedConfig().part_configs()


def test_stacked_is_registered_but_left_out_of_the_default_run() -> None:
    assert "stacked" in FAMILIES and "stacked" in OPT_IN_FAMILIES
    assert "stacked" not in default_families() and "ease" in default_families()


# --- real data --------------------------------------------------------------------------------
REAL_PARTS: dict[str, Any] = {"parts": {"ease": {}, "item_knn": {}, "popularity": {}}}


@pytest.mark.real_data
def test_stacked_on_ml_100k_p4_is_at_least_ease_and_well_above_popularity(
    datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Through the stages the flow runs (the model saved by train, loaded back by evaluate). Band from
    benchmarks/stacked.py with these parts (benchmarks/results/stacked.json)."""
    from recsys_models.splitting import SplitSettings
    from stages.evaluate import compare_families, evaluate
    from stages.ingest import ingest
    from stages.layout import EvalDir
    from stages.split import split
    from stages.train import train
    from stages.validate import validate

    root = tmp_path_factory.mktemp("stacked")
    validated = validate(ingest("ml-100k", root / "ingest", datasets_dir, root / "dl"), root / "validate")
    split_dir = split(validated, root / "split", SplitSettings(protocol="temporal-user"))
    evaluated = {}
    for family, config in (("stacked", REAL_PARTS), ("ease", None), ("popularity", None)):
        trained = train(split_dir, root / family / "train", family, config, items_dir=validated)
        evaluated[family] = evaluate(split_dir, trained, root / family / "evaluate", items_dir=validated)
    stacked, popularity = (EvalDir(evaluated[name]).metrics() for name in ("stacked", "popularity"))
    assert 0.17 <= stacked["ndcg_at_10"] <= 0.21  # 0.186 (seed 42), EASE 0.183
    assert stacked["ndcg_at_10"] >= popularity["ndcg_at_10"] + 0.05
    paired = compare_families(evaluated["stacked"], evaluated["ease"])
    assert paired.ci_high >= 0.0  # never significantly worse than its best part on the same users
