"""Sequential families: sequence building, padding invariance, and a planted next-item pattern."""

import numpy as np
import polars as pl
import pytest
import torch

from recsys_models.ease import EASE, EASEConfig
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.popularity import Popularity
from recsys_models.sequential import GRU4Rec, GRU4RecConfig, Markov, MarkovConfig, SASRec, SASRecConfig
from recsys_models.sequential.gru4rec import GRU4RecNetwork
from recsys_models.sequential.sasrec import SASRecNetwork
from recsys_models.sequential.sequences import PAD, recent_items, training_windows, user_sequences


def planted_walks(n_users: int = 300, n_items: int = 200, length: int = 24, seed: int = 0) -> pl.DataFrame:
    """Each user walks the items: the next item is f(current) with probability 1/2, else a random one.

    f is a fixed random permutation and a user's last step always follows it. As a set, a history
    is a bag of short f-chains whose ends all look alike; only the order says which chain is last,
    so the held-out last item f(second-to-last) is found by sequence models and not by set models.
    """
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    rows = []
    for user in range(n_users):
        history = [int(rng.integers(n_items))]
        while len(history) < length:
            follow = successor[history[-1]]
            if (len(history) == length - 1 or rng.random() < 0.5) and follow not in history:
                history.append(int(follow))
            elif len(history) == length - 1:
                history = [int(rng.integers(n_items))]  # the last step must follow f: start again
            else:
                history.append(int(rng.choice(np.setdiff1d(np.arange(n_items), history))))
        rows += [(user + 1, item + 1, 1000 * user + step) for step, item in enumerate(history)]
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    return frame.with_columns(pl.lit(4.0).alias("rating"))


def last_item_split(frame: pl.DataFrame) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Everything but each user's last item (as Interactions), and the held-out (user, item) indices."""
    last = pl.col("timestamp") == pl.col("timestamp").max().over("user_id")
    history, test = frame.filter(~last), frame.filter(last)
    data = Interactions.from_frame(history)
    return data, data.users.index_of(test["user_id"].to_numpy()), data.items.index_of(test["item_id"].to_numpy())


def hit_rate(model, users: np.ndarray, items: np.ndarray, k: int = 10) -> float:
    top, _ = model.recommend(users, k=k)
    return float((top == items[:, None]).any(axis=1).mean())


@pytest.fixture(scope="module")
def planted() -> tuple[Interactions, np.ndarray, np.ndarray]:
    return last_item_split(planted_walks())


def test_sequences_follow_time_then_item_id(tiny_ratings: pl.DataFrame) -> None:
    data = Interactions.from_frame(tiny_ratings.sample(fraction=1.0, shuffle=True, seed=1))
    sequences = user_sequences(data)
    raw = data.items.ids[sequences.items]
    # user 1: items 10 (t1), 20 (t2), 30 (t3), 40 (t10); user 3: 10, 30, 50 (t1-3), 20 (t11)
    assert raw[sequences.indptr[0] : sequences.indptr[1]].tolist() == [10, 20, 30, 40]
    assert raw[sequences.indptr[2] : sequences.indptr[3]].tolist() == [10, 30, 50, 20]
    tied = Interactions.from_frame(
        pl.DataFrame({"user_id": [7, 7, 7], "item_id": [30, 10, 20], "rating": [1.0] * 3, "timestamp": [5, 5, 4]})
    )
    assert tied.items.ids[user_sequences(tied).items].tolist() == [20, 10, 30]


def test_recent_items_are_left_padded_and_most_recent_last(tiny_ratings: pl.DataFrame) -> None:
    data = Interactions.from_frame(tiny_ratings)
    recent = recent_items(user_sequences(data), 3)
    user_4 = data.users.index_of(np.array([4]))[0]
    assert recent.shape == (data.n_users, 3)
    assert recent[user_4, 0] == PAD  # user 4 has two items: 20 then 40
    assert data.items.ids[recent[user_4, 1:] - 1].tolist() == [20, 40]
    user_1 = data.users.index_of(np.array([1]))[0]
    assert data.items.ids[recent[user_1] - 1].tolist() == [20, 30, 40]  # the last 3 of 4


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_training_windows_predict_every_item_but_the_first_once(tiny_ratings: pl.DataFrame, length: int) -> None:
    data = Interactions.from_frame(tiny_ratings)
    sequences = user_sequences(data)
    windows = training_windows(sequences, length)
    assert windows.inputs.shape == windows.targets.shape == (windows.users.size, length)
    assert windows.n_tokens == len(data) - data.n_users
    for user in range(data.n_users):
        items = sequences.items[sequences.indptr[user] : sequences.indptr[user + 1]] + 1
        mine = windows.targets[windows.users == user]
        assert sorted(mine[mine != PAD].tolist()) == sorted(items[1:].tolist())
        pairs = {
            (int(i), int(t))
            for i, t in zip(windows.inputs[windows.users == user].ravel(), mine.ravel(), strict=False)
            if t != PAD
        }
        assert pairs == set(zip(items[:-1].tolist(), items[1:].tolist(), strict=False))
    assert ((windows.inputs == PAD) == (windows.targets == PAD)).all()
    assert (windows.targets[:, -1] != PAD).all()  # windows end on the last column, as scoring reads


@pytest.mark.parametrize(
    "network_class, config",
    [
        (SASRecNetwork, SASRecConfig(dim=16, n_heads=2, max_length=12)),
        (GRU4RecNetwork, GRU4RecConfig(dim=16, hidden_size=12, n_layers=2, max_length=12)),
    ],
)
def test_padding_does_not_change_the_prediction(network_class, config) -> None:
    torch.manual_seed(0)
    network = network_class(30, config).eval()
    for parameter in network.parameters():  # padding row too: the network must not depend on it
        torch.nn.init.normal_(parameter, std=0.3)
    sequence = torch.tensor([[5, 9, 2, 17]])
    padded = torch.cat([torch.zeros(1, 8, dtype=torch.int64), sequence], dim=1)
    with torch.no_grad():
        short, long = network.encode(sequence)[:, -1], network.encode(padded)[:, -1]
        other = network.encode(torch.tensor([[5, 9, 3, 17]]))[:, -1]
    torch.testing.assert_close(short, long, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(short, other, atol=1e-3)  # the input does matter


def test_markov_scores_are_transition_shares(tiny_ratings: pl.DataFrame) -> None:
    data = Interactions.from_frame(tiny_ratings)
    model = Markov(MarkovConfig(popularity_weight=0.0)).fit(data)
    # transitions out of item 20: user 1 20->30, user 2 20->40, user 4 20->40; user 3 ends on 20
    user_3 = data.users.index_of(np.array([3]))
    scores = dict(zip(model.items.ids.tolist(), model.score(user_3)[0].tolist(), strict=False))
    assert scores == pytest.approx({10: 0.0, 20: 0.0, 30: 1 / 3, 40: 2 / 3, 50: 0.0})
    two_steps = Markov(MarkovConfig(n_recent=2, decay=0.5, popularity_weight=0.0)).fit(data)
    # user 3's item before 20 is 50 (t3), which user 2 followed by nothing and user 3 by 20
    combined = dict(zip(model.items.ids.tolist(), two_steps.score(user_3)[0].tolist(), strict=False))
    assert combined == pytest.approx({10: 0.0, 20: 0.5, 30: 1 / 3, 40: 2 / 3, 50: 0.0})


SEQUENCE_MODELS = {
    "markov": lambda: Markov(),
    "gru4rec": lambda: GRU4Rec(
        GRU4RecConfig(dim=32, hidden_size=32, max_length=16, epochs=15, batch_size=64, learning_rate=5e-3),
        TrainingOptions(seed=0, device="cpu"),
    ),
    "sasrec": lambda: SASRec(
        SASRecConfig(dim=32, max_length=16, epochs=15, batch_size=64, learning_rate=5e-3, dropout=0.1),
        TrainingOptions(seed=0, device="cpu"),
    ),
    "sasrec_bce": lambda: SASRec(
        SASRecConfig(
            dim=32, max_length=16, epochs=15, batch_size=64, learning_rate=5e-3, dropout=0.1, loss="bce", n_negatives=8
        ),
        TrainingOptions(seed=0),
    ),
    "gru4rec_sampled": lambda: GRU4Rec(
        GRU4RecConfig(
            dim=32,
            hidden_size=32,
            max_length=16,
            epochs=15,
            batch_size=64,
            learning_rate=5e-3,
            loss="sampled_softmax",
            n_negatives=32,
        ),
        TrainingOptions(seed=0),
    ),
}


@pytest.mark.parametrize("name", sorted(SEQUENCE_MODELS))
def test_sequence_models_find_the_planted_successor(planted, name: str) -> None:
    data, users, items = planted
    model = SEQUENCE_MODELS[name]().fit(data)
    assert hit_rate(model, users, items) > 0.8


def test_set_models_cannot_find_the_planted_successor(planted) -> None:
    data, users, items = planted
    assert hit_rate(Popularity().fit(data), users, items) < 0.15
    assert hit_rate(EASE(EASEConfig(l2=10.0)).fit(data), users, items) < 0.5
