"""The shared neural pieces added for the NCF and autoencoder families: batches, epoch loop, losses."""

import math

import pytest
import torch

from recsys_models.losses import gaussian_kl_divergence, multinomial_loss
from recsys_models.training import EarlyStopping, refit_record, run_epochs, seeded_generator, shuffled_batches


def test_shuffled_batches_cover_every_row_once_in_seeded_order() -> None:
    batches = list(shuffled_batches(10, 4, seeded_generator(1)))
    assert [batch.numel() for batch in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = torch.cat(list(shuffled_batches(10, 4, seeded_generator(1))))
    other = torch.cat(list(shuffled_batches(10, 4, seeded_generator(2))))
    assert torch.equal(torch.cat(batches), again) and not torch.equal(again, other)
    with pytest.raises(ValueError, match="batch_size"):
        list(shuffled_batches(10, 0, seeded_generator(1)))


def test_run_epochs_stops_early_and_restores_the_best_epoch() -> None:
    module = torch.nn.Linear(1, 1)
    validation = iter([0.1, 0.5, 0.3, 0.2, 0.9])  # best at epoch 2, then two epochs without gain

    def train_epoch(epoch: int) -> dict[str, float]:
        assert module.training
        with torch.no_grad():
            module.weight.fill_(float(epoch))
        return {"train_loss": 1.0 / epoch}

    def validate() -> float:
        assert not module.training and not torch.is_grad_enabled()
        return next(validation)

    history, best = run_epochs("test", module, 10, train_epoch, validate, EarlyStopping(2, lower_is_better=False))
    assert best == 2 and [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert module.weight.item() == 2.0 and not module.training
    assert history[1]["valid_ndcg_at_10"] == 0.5 and history[0]["train_loss"] == 1.0
    assert all(record["epoch_seconds"] >= 0 for record in history)


def test_run_epochs_without_validation_runs_every_epoch() -> None:
    module = torch.nn.Linear(1, 1)
    history, best = run_epochs("test", module, 3, lambda epoch: {"train_loss": float(epoch)})
    assert best == 3 and [record["train_loss"] for record in history] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="stopper"):
        run_epochs("test", module, 3, lambda epoch: {}, validate=lambda: 0.0)


def test_run_epochs_reports_each_epoch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="recsys_models.progress")
    run_epochs("fam", torch.nn.Linear(1, 1), 2, lambda epoch: {"train_loss": 0.5})
    events = [record.recsys_progress for record in caplog.records if hasattr(record, "recsys_progress")]
    assert [(event["family"], event["epoch"]) for event in events] == [("fam", 1), ("fam", 2)]
    assert all(event["max_epochs"] == 2 for event in events)


def test_refit_record_prefixes_every_figure_but_the_epoch() -> None:
    assert refit_record({"epoch": 3, "train_loss": 0.2, "gmf_train_loss": 0.1}) == {
        "epoch": 3,
        "refit_train_loss": 0.2,
        "refit_gmf_train_loss": 0.1,
    }


def test_multinomial_loss_matches_hand_computed_values() -> None:
    counts = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    # uniform logits: each observed item costs log 4
    assert multinomial_loss(torch.zeros(2, 4), counts).item() == pytest.approx((2 + 1) * math.log(4) / 2)
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0, 0.0]])  # p = (1/2, 1/6, 1/6, 1/6)
    observed = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert multinomial_loss(logits, observed).item() == pytest.approx(math.log(2) + math.log(6))
    with pytest.raises(ValueError, match="equal"):
        multinomial_loss(torch.zeros(2, 4), torch.zeros(2, 3))


def test_multinomial_loss_gradient_moves_mass_to_the_observed_items() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    multinomial_loss(logits, torch.tensor([[1.0, 0.0, 0.0]])).backward()
    assert logits.grad is not None  # set by backward()
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]


def test_gaussian_kl_divergence_matches_the_closed_form() -> None:
    assert gaussian_kl_divergence(torch.zeros(3, 2), torch.zeros(3, 2)).item() == 0.0
    mean, log_variance = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * (1 + 1 - 1 - 0) + 0.5 * (2 + 0 - 1 - log 2)
    expected = 0.5 + 0.5 * (1 - math.log(2.0))
    assert gaussian_kl_divergence(mean, log_variance).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="differ in shape"):
        gaussian_kl_divergence(torch.zeros(1, 2), torch.zeros(1, 3))
