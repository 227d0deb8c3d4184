"""The two-tower user tower: the history's padding entries add nothing and the padding row learns nothing."""

import torch

from recsys_models.two_tower.network import TwoTowerNetwork, user_tower

N_USERS, N_ITEMS, DIMENSION = 4, 6, 8


def network() -> TwoTowerNetwork:
    return TwoTowerNetwork(
        N_USERS,
        N_ITEMS,
        DIMENSION,
        temperature=0.2,
        item_bias=False,
        init_std=0.1,
        generator=torch.Generator().manual_seed(0),
    )


def test_padding_entries_add_nothing_whatever_the_padding_row_holds() -> None:
    net = network()
    history = torch.tensor([[0, 1, N_ITEMS, N_ITEMS], [2, N_ITEMS, N_ITEMS, N_ITEMS]])
    ids = net.user_embedding(torch.tensor([0, 1]))
    table = net.history_embedding.weight.detach().clone()
    zero_padding = user_tower(ids, table, history, padding=N_ITEMS)
    table[N_ITEMS] = 5.0  # a padding row that is not zero must not move any user
    assert torch.allclose(user_tower(ids, table, history, padding=N_ITEMS), zero_padding)
    by_hand = torch.nn.functional.normalize(
        ids + table[[0, 2]] + torch.stack([table[1], torch.zeros(DIMENSION)]) / 1, dim=-1
    )
    expected_first = torch.nn.functional.normalize(ids[0] + (table[0] + table[1]) / 2, dim=-1)
    assert torch.allclose(zero_padding[0], expected_first, atol=1e-6)
    assert torch.allclose(zero_padding[1], by_hand[1], atol=1e-6)


def test_the_padding_row_gets_no_gradient() -> None:
    net = network()
    history = torch.tensor([[0, N_ITEMS, N_ITEMS], [1, 2, N_ITEMS]])
    net.query_vectors(torch.tensor([0, 1]), history).sum().backward()
    gradient = net.history_embedding.weight.grad
    assert gradient is not None
    assert torch.count_nonzero(gradient[N_ITEMS]) == 0  # what nn.Embedding(padding_idx=...) guarantees
    assert torch.count_nonzero(gradient[:3]) > 0  # the items in the histories do learn
