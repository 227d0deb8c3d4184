"""Warm starts (issue 20's refresh): a fit that begins from an earlier fit's parameters, remapped by
raw id where the users or items changed, and runs a few epochs."""

import numpy as np
import pytest
import torch
from torch import nn

from recsys_models.base import Recommender
from recsys_models.interactions import IdVocabulary, Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import FAMILIES, family_class, make_config
from recsys_models.testing import FAST_CONFIGS, fitted, synthetic_item_features
from recsys_models.warm_start import WARM_EPOCHS, WarmStart, starting_from, trained_parameters

WARM = sorted(
    name
    for name, model_class in FAMILIES.items()
    if model_class.trained_parameters is not Recommender.trained_parameters
)  # the torch families


class Tables(nn.Module):
    """A user table, an item table with a padding row, item-indexed output and input layers, and
    layers without a vocabulary axis."""

    def __init__(self, n_users: int, n_items: int, other: int = 6) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, 4)
        self.items = nn.Embedding(n_items + 1, 4, padding_idx=0)
        self.decoder = nn.Linear(4, n_items)  # weight (n_items, 4), bias (n_items,)
        self.encoder = nn.Linear(n_items, 3)  # weight (3, n_items): items on axis 1
        self.hidden = nn.Linear(4, 4)
        self.other = nn.Linear(other, 2)


def test_tables_are_copied_row_by_row_by_raw_id_and_new_ids_keep_their_initialisation() -> None:
    torch.manual_seed(0)
    users_before = IdVocabulary(np.array([10, 20, 30, 50, 60, 70, 80]))
    users_now = IdVocabulary(np.array([20, 30, 40, 50, 60, 70, 80]))
    items_before, items_now = IdVocabulary(np.array([1, 2, 3, 4])), IdVocabulary(np.array([2, 4, 5, 6, 7]))
    earlier = Tables(7, 4)
    now = Tables(7, 5, other=10)
    fresh = {name: parameter.detach().clone() for name, parameter in now.named_parameters()}
    warm = WarmStart.between(trained_parameters(earlier) or {}, (users_before, items_before), (users_now, items_now))
    counts = warm.load_into(now)
    assert counts == {"remapped": 5, "copied": 4, "kept": 1}  # other.weight changed shape
    # users 20, 30 were rows 1, 2; user 40 is new; 50.. kept their rows
    assert torch.equal(now.user_factors.weight[:2], earlier.user_factors.weight[1:3])
    assert torch.equal(now.user_factors.weight[2], fresh["user_factors.weight"][2])
    assert torch.equal(now.user_factors.weight[3:], earlier.user_factors.weight[3:])
    # items 2 and 4 were indices 1 and 3 (embedding rows +1 for the padding row, copied too)
    assert torch.equal(now.items.weight[0], earlier.items.weight[0])
    assert torch.equal(now.items.weight[1], earlier.items.weight[2])
    assert torch.equal(now.items.weight[2], earlier.items.weight[4])
    assert torch.equal(now.items.weight[3:], fresh["items.weight"][3:])
    assert torch.equal(now.decoder.bias[:2], earlier.decoder.bias[[1, 3]])
    assert torch.equal(now.encoder.weight[:, :2], earlier.encoder.weight[:, [1, 3]])
    assert torch.equal(now.encoder.weight[:, 2:], fresh["encoder.weight"][:, 2:])
    assert torch.equal(now.hidden.weight, earlier.hidden.weight)
    assert torch.equal(now.other.weight, fresh["other.weight"])


@pytest.mark.parametrize("family", WARM)
def test_a_warm_start_on_the_same_data_begins_where_the_earlier_fit_ended(
    family: str, parts: tuple[Interactions, Interactions]
) -> None:
    """With a vanishing learning rate the warm fit cannot move: its scores are the earlier model's,
    which holds only if every trained parameter was loaded; and it runs at most WARM_EPOCHS epochs."""
    earlier = fitted(family, parts)
    vocabularies = (earlier.users, earlier.items)
    warm = WarmStart.between(earlier.trained_parameters() or {}, vocabularies, vocabularies)
    model_class = family_class(family)
    still = {"learning_rate": 1e-12, "epochs": 50} | ({"finetune_learning_rate": 1e-12} if family == "neumf" else {})
    config = make_config(family, (FAST_CONFIGS.get(family) or {}) | still)
    features = synthetic_item_features(parts[0].items) if model_class.uses_item_features else None
    with starting_from(warm):
        again = model_class(config, TrainingOptions(seed=11, device="cpu")).fit(*parts, features)
    users = np.arange(len(earlier.users))
    np.testing.assert_allclose(again.score(users), earlier.score(users), rtol=1e-3, atol=1e-3)
    assert max(record["epoch"] for record in again.history) <= WARM_EPOCHS


def test_a_refresh_with_new_users_and_items_learns_them_in_the_warm_epochs() -> None:
    """Earlier fit on the older rows; the warm fit on every row places the new users' and items'
    rows (they move from their initialisation) and keeps the known ones near where they were."""
    from recsys_models.testing import low_rank_ratings

    frame = low_rank_ratings(n_users=80, n_items=40, seed=5).sort("timestamp")
    older = frame.head(int(frame.height * 0.8)).filter(frame.head(int(frame.height * 0.8))["user_id"] <= 70)
    values = {"epochs": 30, "n_factors": 4, "refit_on_full": False}
    earlier = family_class("biased_mf")(make_config("biased_mf", values), TrainingOptions(seed=1)).fit(
        Interactions.from_frame(older)
    )
    full = Interactions.from_frame(frame)
    warm = WarmStart.between(
        earlier.trained_parameters() or {}, (earlier.users, earlier.items), (full.users, full.items)
    )
    with starting_from(warm):
        refreshed = family_class("biased_mf")(make_config("biased_mf", values), TrainingOptions(seed=1)).fit(full)
    assert len(refreshed.users) > len(earlier.users)
    assert len(refreshed.history) <= WARM_EPOCHS
    known = earlier.users.ids
    rows_now, rows_before = refreshed.users.index_of(known), earlier.users.index_of(known)
    before = earlier.trained_parameters() or {}
    after = refreshed.trained_parameters() or {}
    user_table = next(
        name for name, tensor in before.items() if tensor.shape[0] == len(earlier.users) and tensor.ndim == 2
    )
    moved_known = (after[user_table][rows_now] - before[user_table][rows_before]).norm(dim=1).mean()
    assert moved_known < before[user_table].norm(dim=1).mean()  # known users start (and stay) near their vectors
