"""Divergence is a failure: a non-finite figure, or a validation RMSE far worse than the global
mean's, fails the family in the train stage with `TrainingDiverged` and a one-line reason."""

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_models.bias import Bias
from recsys_models.ease import EASE
from recsys_models.exceptions import RecsysError, TrainingDiverged
from recsys_models.interactions import Interactions
from recsys_models.registry import FAMILIES
from recsys_models.testing import FAST_CONFIGS
from recsys_models.training import EarlyStopping, check_against_baseline, check_history, run_epochs
from recsys_models.validation_metrics import constant_rmse, validation_ndcg
from stages.ingest import ingest
from stages.manifest import read_manifest
from stages.split import split
from stages.train import check_rating_divergence, load_training_data, train
from stages.validate import validate
from tests.pipeline_helpers import write_ratings

ABSURD = FAST_CONFIGS["biased_mf"] | {"learning_rate": 1e6}


class BrokenEASE(EASE):
    """EASE whose closed-form solve left NaN weights, as a numerically broken one would."""

    family = "broken_ease"

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        super()._fit(train, valid, item_features)
        self._weights.fill_(math.nan)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporal split of small generated ratings (planted low-rank structure, ratings 0.5-5)."""
    root = tmp_path_factory.mktemp("divergence")
    ratings = write_ratings(root / "ratings.parquet")
    validated = validate(ingest(str(ratings), root / "ingest", None, root / "downloads"), root / "validate")
    return split(validated, root / "split")


def test_absurd_learning_rate_fails_the_train_stage_with_a_one_line_reason(split_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged) as raised:
        train(split_dir, tmp_path / "train", "biased_mf", ABSURD)
    message = str(raised.value)
    assert "\n" not in message and isinstance(raised.value, RecsysError)
    # the served model's clipped predictions hide the blow-up; the trainer's own figure shows it
    expected = (
        r"biased_mf diverged: validation rmse \(best epoch\) (\S+) is more than 3x the zero-prediction baseline's (\S+)"
    )
    found = re.fullmatch(expected, message)
    assert found and float(found[1]) > 1e6 and 3 < float(found[2]) < 4  # ratings around 3.5
    assert not (tmp_path / "train" / "model").exists()
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "train")  # the stage never finished: nothing downstream trusts it


def test_a_normal_config_passes_and_records_what_was_checked(split_dir: Path, tmp_path: Path) -> None:
    out = train(split_dir, tmp_path / "train", "biased_mf", FAST_CONFIGS["biased_mf"])
    checked = read_manifest(out)["counts"]["divergence_check"]
    assert checked["factor"] == 3.0
    assert 0 < checked["valid_rmse"] < checked["global_mean_rmse"] < 1.1
    assert checked["best_epoch_valid_rmse"] < checked["global_mean_rmse"] < checked["zero_rmse"]
    assert 0 <= checked["valid_ndcg_at_10"] <= 1
    history = json.loads((out / "history.json").read_text())
    assert all(math.isfinite(value) for record in history for value in record.values())


def test_the_baseline_factor_is_honoured(split_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"is more than 0.5x the global-mean baseline's"):
        train(split_dir, tmp_path / "sound", "biased_mf", FAST_CONFIGS["biased_mf"], divergence_factor=0.5)
    # finite, however large: with a lenient enough factor nothing else fails it
    out = train(split_dir, tmp_path / "absurd", "biased_mf", ABSURD, divergence_factor=1e15)
    assert read_manifest(out)["counts"]["divergence_check"]["factor"] == 1e15


def test_the_trainers_figure_may_sit_near_the_zero_prediction_but_not_far_above(split_dir: Path) -> None:
    train_part, valid_part = load_training_data(split_dir)
    model = Bias().fit(train_part, valid_part)
    global_mean = constant_rmse(float(train_part.rating.mean()), valid_part)
    zero = constant_rmse(0.0, valid_part)
    model.history = [{"epoch": 1, "valid_rmse": 3.3 * global_mean}]  # mf's untrained cold users sit about here
    assert check_rating_divergence(model, train_part, valid_part, 3.0)["zero_rmse"] == zero
    model.history = [{"epoch": 1, "valid_rmse": 50.0}, {"epoch": 2, "valid_rmse": 3.1 * zero}]
    expected = r"^bias diverged: validation rmse \(best epoch\) 1\d\.\d is more than 3x the zero-prediction baseline's"
    with pytest.raises(TrainingDiverged, match=expected):
        check_rating_divergence(model, train_part, valid_part, 3.0)


def test_a_closed_form_family_with_nan_arrays_fails(
    split_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FAMILIES, BrokenEASE.family, BrokenEASE)
    with pytest.raises(TrainingDiverged, match=r"^broken_ease diverged: valid_ndcg_at_10 is NaN after fitting$"):
        train(split_dir, tmp_path / "train", "broken_ease", FAST_CONFIGS["ease"])
    train(split_dir, tmp_path / "ease", "ease", FAST_CONFIGS["ease"])  # the sound solve passes


def test_run_epochs_stops_at_the_first_non_finite_loss() -> None:
    losses = iter([0.5, math.inf, 0.1])
    trained: list[int] = []

    def train_epoch(epoch: int) -> dict[str, float]:
        trained.append(epoch)
        return {"train_loss": next(losses)}

    with pytest.raises(TrainingDiverged, match=r"^mf diverged: train_loss is inf at epoch 2$"):
        run_epochs("mf", torch.nn.Linear(1, 1), 3, train_epoch)
    assert trained == [1, 2]


def test_run_epochs_fails_on_a_nan_validation_metric() -> None:
    metrics = iter([0.9, math.nan])
    with pytest.raises(TrainingDiverged, match=r"^gmf diverged: valid_rmse is NaN at epoch 2$"):
        run_epochs(
            "gmf",
            torch.nn.Linear(1, 1),
            5,
            lambda epoch: {"train_loss": 1.0},
            lambda: next(metrics),
            EarlyStopping(patience=3),
            metric="valid_rmse",
        )


def test_history_check_covers_families_that_write_their_own_history() -> None:
    first = {"epoch": 1, "weight": 0.5, "valid_ndcg_at_10": 0.3}
    check_history("hybrid_weighted", [first])
    with pytest.raises(TrainingDiverged, match=r"^hybrid_weighted diverged: valid_ndcg_at_10 is NaN at epoch 2$"):
        check_history("hybrid_weighted", [first, {"epoch": 2, "weight": 0.6, "valid_ndcg_at_10": math.nan}])


def test_baseline_check_message_and_edges() -> None:
    check_against_baseline("bias", "rmse", 3.0, 1.0, "global-mean", factor=3.0)  # at the bound: passes
    expected = r"^bias diverged: validation rmse 9.1e\+16 is more than 3x the global-mean baseline's 1.05$"
    with pytest.raises(TrainingDiverged, match=expected):
        check_against_baseline("bias", "rmse", 9.1e16, 1.05, "global-mean")
    with pytest.raises(TrainingDiverged, match=r"^bias diverged: validation rmse is inf$"):
        check_against_baseline("bias", "rmse", math.inf, 1.0, "global-mean")
    check_against_baseline("bias", "rmse", 0.2, 0.0, "global-mean")  # all ratings equal: a zero baseline bounds nothing


def test_validation_ndcg_is_nan_for_nan_or_infinite_scores_but_not_for_minus_infinity() -> None:
    relevant = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]], dtype=np.float32))
    exclude = sp.csr_matrix((2, 3), dtype=np.float32)

    def ndcg(poison: float) -> float:
        scores = torch.tensor([[0.1, 0.9, 0.2], [0.8, 0.3, 0.1]])
        scores[0, 2] = poison
        return validation_ndcg(lambda users: scores[users], relevant, exclude, k=2)

    assert math.isnan(ndcg(math.nan)) and math.isnan(ndcg(math.inf))
    assert ndcg(-math.inf) == 1.0
