"""Quality bands of the neural families (NCF and autoencoders) on real MovieLens, P2 and P4 on both datasets.

Each (dataset, protocol) is ingested, validated and split once (module-scoped), and the families
are trained and evaluated through the stage functions the flow runs (as the classic module's
`run_case`, here with this module's configs). NeuMF and Mult-VAE, the headline families, run on
all four cases; GMF, MLP and Mult-DAE on ml-100k P4, the cheapest case that evaluates many
users. Bands come from measured figures (seed 42) with room for seed noise (PROTOCOLS.md,
"Quality bands"). Each family must beat popularity on ml-100k P4 (on ml-latest-small P4 they
land near it, and the README says so); on P2 (28 / 98 evaluated users) the bands are wide and no
family is asserted above popularity. The families train with `TEST_CONFIGS` (fewer epochs than
their defaults) to keep the module to a few minutes; the bands are for those configs.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from recsys_models.datasets.spec import ProtocolName
from recsys_models.splitting import SplitSettings
from stages.evaluate import evaluate
from stages.ingest import ingest
from stages.layout import EvalDir
from stages.split import split
from stages.train import train
from stages.validate import validate

pytestmark = pytest.mark.real_data

HEADLINE = ("popularity", "neumf", "mult_vae")
ALL = (*HEADLINE, "gmf", "mlp", "mult_dae")
TEST_CONFIGS: dict[str, dict[str, Any]] = {
    "gmf": {"epochs": 5},
    "mlp": {"epochs": 5},
    "neumf": {"epochs": 5},
    "mult_vae": {"epochs": 25, "patience": 5},
    "mult_dae": {"epochs": 25, "patience": 5},
}
CASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ml-latest-small", "temporal-global"): HEADLINE,
    ("ml-latest-small", "temporal-user"): HEADLINE,
    ("ml-100k", "temporal-global"): HEADLINE,
    ("ml-100k", "temporal-user"): ALL,
}
# Cases where every family's 95% interval lies above popularity's NDCG@10. On ml-latest-small P4 the
# neural families land near popularity (README), and P2 has too few users to separate anything.
ABOVE_POPULARITY = {("ml-100k", "temporal-user")}
# (dataset, protocol) -> family -> (low, high) band of NDCG@10 with TEST_CONFIGS; measured (seed 42) in
# the comments. P4 bands are about +-0.03 (2.5 standard errors over 592 / 908 users), P2 bands about
# +-0.07 (wider on ml-latest-small); popularity is deterministic, its band only allows for ties and
# rounding.
BANDS: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("ml-latest-small", "temporal-user"): {
        "popularity": (0.070, 0.080),  # 0.0753
        "neumf": (0.055, 0.110),  # 0.0816
        "mult_vae": (0.050, 0.105),  # 0.0767
    },
    ("ml-latest-small", "temporal-global"): {  # 28 users: one user's hit moves NDCG@10 by about 0.03
        "popularity": (0.078, 0.089),  # 0.0834
        "neumf": (0.020, 0.190),  # 0.0905
        "mult_vae": (0.010, 0.160),  # 0.0643
    },
    ("ml-100k", "temporal-user"): {
        "popularity": (0.089, 0.099),  # 0.0942
        "neumf": (0.110, 0.170),  # 0.1389
        "mult_vae": (0.110, 0.170),  # 0.1409
        "gmf": (0.100, 0.150),  # 0.1188
        "mlp": (0.100, 0.155),  # 0.1243
        "mult_dae": (0.125, 0.185),  # 0.1543
    },
    ("ml-100k", "temporal-global"): {
        "popularity": (0.129, 0.139),  # 0.1341
        "neumf": (0.065, 0.205),  # 0.1363
        "mult_vae": (0.055, 0.195),  # 0.1232
    },
}


def run_case(datasets_dir: Path, root: Path, dataset: str, protocol: ProtocolName) -> dict[str, dict]:
    """Ingest, validate and split once; train (with TEST_CONFIGS) and evaluate each family of the case."""
    validated = validate(ingest(dataset, root / "ingest", datasets_dir, root / "downloads"), root / "validate")
    split_dir = split(validated, root / "split", SplitSettings(protocol=protocol))
    results = {}
    for family in CASES[(dataset, protocol)]:
        train_dir = train(split_dir, root / "train" / family, family, TEST_CONFIGS.get(family), items_dir=validated)
        eval_dir = evaluate(split_dir, train_dir, root / "evaluate" / family, items_dir=validated)
        results[family] = EvalDir(eval_dir).metrics()
        results[family]["history"] = json.loads((train_dir / "history.json").read_text())
    return results


@pytest.fixture(scope="module", params=list(CASES), ids=lambda case: f"{case[0]}-{case[1]}")
def case(request: pytest.FixtureRequest, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """((dataset, protocol), {family: metrics}) for one case, computed once per module run."""
    dataset, protocol = request.param
    return request.param, run_case(datasets_dir, tmp_path_factory.mktemp(f"{dataset}-{protocol}"), dataset, protocol)


def test_ndcg_lies_in_its_band(case) -> None:
    key, results = case
    for family, (low, high) in BANDS[key].items():
        value = results[family]["ndcg_at_10"]
        assert low <= value <= high, f"{family} on {key}: NDCG@10 {value:.4f} outside [{low}, {high}]"


def test_families_beat_popularity_where_they_are_known_to(case) -> None:
    key, results = case
    if key not in ABOVE_POPULARITY:
        pytest.skip(f"{key}: not separable from popularity (too few users, or the families are near it there)")
    popularity = results["popularity"]["ndcg_at_10"]
    for family, metrics in results.items():
        if family != "popularity":
            low = metrics["ndcg_at_10_ci_low"]
            assert low > popularity, f"{family}: interval from {low:.4f}, popularity {popularity:.4f}"


def test_history_holds_the_per_epoch_curves(case) -> None:
    _, results = case
    for family, metrics in results.items():
        if family == "popularity":
            continue
        validated = [record for record in metrics["history"] if "valid_ndcg_at_10" in record]
        assert validated and all("train_loss" in record and "epoch_seconds" in record for record in validated)
