"""Content and hybrid families on the real MovieLens data, warm and on the cold-item slice,
through the stage functions the flow runs (features from the validated items and tags tables).

Bands (PROTOCOLS.md, "Quality bands") come from `benchmarks/cold_start_quality.py` (results in
benchmarks/results/cold_start_quality.json). content_tfidf is deterministic, so its cold-item
figures are exact; the bands around them catch a broken model, which lands at the random
order's expectation (`cold_items_random_*`) or at zero. Collaborative families score zero on the
slice and say so. The hybrids must be at least as good as their collaborative component on warm
users (paired interval on the same users) and reach the cold items. Cold slices are small (14 to
126 users), so their intervals are wide: the tests check the exact values, not significance.
To stay cheap, the hybrids run on ml-100k (EASE fits in about a second there) and on
ml-latest-small P4 with ALS as the component.
"""

from pathlib import Path

import pytest

from recsys_models.datasets.spec import ProtocolName
from recsys_models.splitting import SplitSettings
from stages.evaluate import compare_families, evaluate
from stages.ingest import ingest
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from stages.validate import validate

pytestmark = pytest.mark.real_data
PROTOCOLS: dict[str, ProtocolName] = {"P2": "temporal-global", "P4": "temporal-user"}


class Runs:
    """Validated data once per dataset, splits once per protocol, each (family, config) trained once."""

    def __init__(self, root: Path, datasets_dir: Path) -> None:
        self.root, self.datasets_dir = root, datasets_dir
        self._validated: dict[str, Path] = {}
        self._splits: dict[tuple[str, str], Path] = {}
        self._evaluated: dict[tuple[str, str, str], Path] = {}

    def split_dir(self, dataset: str, protocol: str) -> Path:
        if dataset not in self._validated:
            base = self.root / dataset
            self._validated[dataset] = validate(
                ingest(dataset, base / "ingest", self.datasets_dir, base / "dl"), base / "validate"
            )
        if (dataset, protocol) not in self._splits:
            self._splits[dataset, protocol] = split(
                self._validated[dataset],
                self.root / dataset / protocol / "split",
                SplitSettings(protocol=PROTOCOLS[protocol]),
            )
        return self._splits[dataset, protocol]

    def eval_dir(self, dataset: str, protocol: str, family: str, config: dict | None = None, name: str = "") -> Path:
        key = (dataset, protocol, name or family)
        if key not in self._evaluated:
            split_dir = self.split_dir(dataset, protocol)
            folder = self.root / dataset / protocol / (name or family)
            train_dir = train(split_dir, folder / "train", family, config, items_dir=self._validated[dataset])
            items_dir = self._validated[dataset]
            self._evaluated[key] = evaluate(split_dir, train_dir, folder / "evaluate", items_dir=items_dir)
        return self._evaluated[key]

    def metrics(self, dataset: str, protocol: str, family: str, config: dict | None = None, name: str = "") -> dict:
        return EvalDir(self.eval_dir(dataset, protocol, family, config, name)).metrics()


@pytest.fixture(scope="module")
def runs(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("content"), datasets_dir)


# (dataset, protocol): content_tfidf's exact cold NDCG@10 band, its evaluated users, the random order's value
CONTENT_COLD = {
    ("ml-latest-small", "P2"): ((0.008, 0.03), 20),
    ("ml-latest-small", "P4"): ((0.008, 0.025), 126),
    ("ml-100k", "P2"): ((0.0, 1.0), 22),
    ("ml-100k", "P4"): ((0.08, 0.2), 14),
}


@pytest.mark.parametrize(("dataset", "protocol"), sorted(CONTENT_COLD))
def test_content_reaches_cold_items_and_popularity_scores_zero_there(runs: Runs, dataset: str, protocol: str) -> None:
    (low, high), users = CONTENT_COLD[dataset, protocol]
    content = runs.metrics(dataset, protocol, "content_tfidf")
    popularity = runs.metrics(dataset, protocol, "popularity")
    assert content["cold_items_scored"] == 1 and content["cold_items_n_eval_users"] == users
    assert low <= content["cold_items_ndcg_at_10"] <= high
    assert popularity["cold_items_scored"] == 0 and "cannot score" in popularity["cold_items_status"]
    assert popularity["cold_items_ndcg_at_10"] == 0.0 and popularity["cold_items_n_eval_users"] == users
    assert content["cold_items_ndcg_at_10"] > popularity["cold_items_ndcg_at_10"]
    # on warm candidates content alone is a weak ranker, far below popularity, but not broken
    assert 0.005 <= content["ndcg_at_10"] < popularity["ndcg_at_10"]


def test_content_is_clearly_above_a_random_order_on_the_largest_cold_slice(runs: Runs) -> None:
    content = runs.metrics("ml-latest-small", "P4", "content_tfidf")
    assert content["cold_items_ndcg_at_10"] > 1.8 * content["cold_items_random_ndcg_at_10"]
    assert content["cold_items_hit_rate_at_10"] > 1.5 * content["cold_items_random_hit_rate_at_10"]


HYBRIDS = [  # (dataset, protocol, hybrid, its config, the component family and config)
    ("ml-100k", "P4", "hybrid_weighted", None, "ease", None),
    ("ml-100k", "P2", "hybrid_weighted", None, "ease", None),
    ("ml-100k", "P4", "hybrid_switching", None, "ease", None),
    ("ml-latest-small", "P4", "hybrid_weighted", {"component": "als"}, "als", None),
]


@pytest.mark.parametrize(("dataset", "protocol", "hybrid", "config", "component", "component_config"), HYBRIDS)
def test_hybrid_matches_its_component_on_warm_users_and_reaches_cold_items(
    runs: Runs,
    dataset: str,
    protocol: str,
    hybrid: str,
    config: dict | None,
    component: str,
    component_config: dict | None,
) -> None:
    name = f"{hybrid}-{component}"
    blended = runs.metrics(dataset, protocol, hybrid, config, name)
    alone = runs.metrics(dataset, protocol, component, component_config)
    paired = compare_families(
        runs.eval_dir(dataset, protocol, hybrid, config, name),
        runs.eval_dir(dataset, protocol, component, component_config),
    )
    assert paired.n_users == alone["n_eval_users"]
    assert paired.ci_high >= 0.0  # never significantly worse than the component on the same users
    assert blended["ndcg_at_10"] >= alone["ndcg_at_10"] - 0.02  # a broken blend falls towards content (0.03)
    content = runs.metrics(dataset, protocol, "content_tfidf")
    assert blended["cold_items_scored"] == 1 and alone["cold_items_ndcg_at_10"] == 0.0
    assert blended["cold_items_ndcg_at_10"] == pytest.approx(content["cold_items_ndcg_at_10"], abs=1e-9)


def test_feature_augmented_mf_learns_warm_and_cold_items(runs: Runs) -> None:
    config = {"epochs": 8, "refit_on_full": False}
    metrics = runs.metrics("ml-100k", "P4", "hybrid_features", config)
    popularity = runs.metrics("ml-100k", "P4", "popularity")
    assert popularity["ndcg_at_10"] + 0.02 <= metrics["ndcg_at_10"] <= 0.22
    assert metrics["cold_items_scored"] == 1
    assert metrics["cold_items_ndcg_at_10"] > metrics["cold_items_random_ndcg_at_10"]
