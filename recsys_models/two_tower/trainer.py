"""Contrastive training of the two towers: in-batch softmax (InfoNCE) with a temperature and the
log-frequency correction for in-batch sampling bias (Yi et al., 2019, "Sampling-bias-corrected
neural modeling for large corpus item recommendations"), optionally mixed with uniformly drawn
extra negatives (Yang et al., 2020, "Mixed negative sampling").

Each training pair (u, i) sees as its user history the `history_length` items u interacted
with before i (ordered by `(timestamp, item)`), so the positive is never inside its own query.
The candidates of a batch are its B positives plus R random items; the logit of every candidate
j is corrected by -log(B q_j + R / n_items), the expected number of times j is drawn into a batch
(q_j = j's share of training pairs). A candidate equal to the row's own positive (a duplicate in
the batch) is masked out of that row's negatives.
"""

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsys_models.training import EarlyStopping, run_epochs, seeded_generator
from recsys_models.two_tower.network import TwoTowerNetwork
from recsys_models.validation_metrics import validation_ndcg


class PairHistories:
    """Each training pair's previous items, read a batch at a time from its user's sequence.

    Holds the items in (user, timestamp, item) order and, per pair, its place in that order and in
    its user's sequence: 24 bytes a pair instead of 8 bytes times the history length for a dense
    (pairs x L) table (10M pairs x 20: 1.6 GB, against 240 MB here).
    """

    def __init__(self, sequence: torch.Tensor, position: torch.Tensor, rank: torch.Tensor, length: int, padding: int):
        self.sequence, self.position, self.rank = sequence, position, rank
        self.length, self.padding = length, padding

    def __getitem__(self, pairs: torch.Tensor) -> torch.Tensor:
        """(len(pairs), L): the pairs' previous items, most recent first, `padding` past the start."""
        offsets = torch.arange(1, self.length + 1, device=pairs.device)
        before = self.position[pairs, None] - offsets
        has = self.rank[pairs, None] >= offsets
        return torch.where(has, self.sequence[before.clamp_min(0)], self.padding)


@dataclass(frozen=True)
class TrainingData:
    """Positive pairs with their histories, on the training device."""

    users: torch.Tensor
    items: torch.Tensor
    history: PairHistories
    user_history: torch.Tensor  # (n_users, L): what the user tower reads at scoring time
    log_frequency: torch.Tensor  # (n_items,) log of each item's share of the pairs (floored)


def training_data(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    n_users: int,
    n_items: int,
    history_length: int,
    device: str,
) -> TrainingData:
    """The pairs on `device`, each with its previous `history_length` items (padding n_items), and
    each user's last `history_length` items."""
    if users.size == 0:
        raise ValueError("two_tower: no positive interactions to train on")
    order = np.lexsort((items, timestamps, users))
    sorted_users, sorted_items = users[order], items[order].astype(np.int64)
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    rank = position - np.searchsorted(sorted_users, users, side="left")  # place in the user's sequence
    counts = np.bincount(sorted_users, minlength=n_users)
    last = np.cumsum(counts) - 1
    user_history = np.full((n_users, history_length), n_items, dtype=np.int64)
    for offset in range(history_length):
        has = counts > offset
        user_history[has, offset] = sorted_items[last[has] - offset]
    share = np.bincount(items, minlength=n_items) / items.size
    log_frequency = np.log(np.maximum(share, 0.5 / items.size))  # an unseen item: half a draw

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    history = PairHistories(
        tensor(sorted_items), tensor(position.astype(np.int64)), tensor(rank.astype(np.int64)), history_length, n_items
    )
    return TrainingData(
        tensor(users.astype(np.int64)),
        tensor(items.astype(np.int64)),
        history,
        tensor(user_history),
        tensor(log_frequency.astype(np.float32)),
    )


@dataclass(frozen=True)
class TrainerSettings:
    """What the trainer needs from the config, without the config type (no import cycle)."""

    family: str
    dimension: int
    temperature: float
    item_bias: bool
    init_std: float
    batch_size: int
    n_random_negatives: int
    logq_correction: bool
    learning_rate: float
    weight_decay: float
    patience: int


def in_batch_loss(
    network: TwoTowerNetwork,
    users: torch.Tensor,
    items: torch.Tensor,
    history: torch.Tensor,
    random_items: torch.Tensor,
    log_frequency: torch.Tensor,
    settings: TrainerSettings,
) -> torch.Tensor:
    """Sampled softmax over the batch's positives plus `random_items`, corrected for sampling bias."""
    queries = network.query_vectors(users, history)
    candidates = torch.cat([items, random_items])
    logits = queries @ network.item_vectors()[candidates].T
    if settings.logq_correction:
        expected = items.numel() * log_frequency.exp() + random_items.numel() / network.n_items
        logits = logits - expected.log()[candidates]
    rows = torch.arange(items.numel(), device=items.device)
    duplicate = candidates[None, :] == items[:, None]
    duplicate[rows, rows] = False  # the row's own target stays
    logits = logits.masked_fill(duplicate, -torch.inf)
    return F.cross_entropy(logits, rows)


def tower_optimizers(network: TwoTowerNetwork, settings: TrainerSettings) -> tuple[torch.optim.Optimizer, ...]:
    """Lazy Adam (`SparseAdam`) for the user id table, fused AdamW for everything else.

    A batch touches at most `batch_size` of the users, so the user table's gradient is sparse and
    only its rows in the batch are updated (no weight decay there). A dense update of the whole table
    every step made an epoch's cost grow with users x pairs (two_tower at 25M ratings, 250k users,
    exponent 2.1 in benchmarks/results/scale.json).
    """
    user_table = network.user_embedding.weight
    dense = [parameter for parameter in network.parameters() if parameter is not user_table]
    return (
        torch.optim.AdamW(dense, lr=settings.learning_rate, weight_decay=settings.weight_decay, fused=True),
        torch.optim.SparseAdam([user_table], lr=settings.learning_rate),
    )


def train_towers(
    data: TrainingData,
    n_users: int,
    n_items: int,
    features: sp.csr_matrix | None,
    settings: TrainerSettings,
    epochs: int,
    seed: int,
    device: str,
    validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
) -> tuple[TwoTowerNetwork, list[dict[str, float]], int]:
    """Train fresh towers; with `validation` (relevant, excluded), stop early on NDCG@10.

    Returns the network (best epoch's weights when validating), per-epoch records and the best
    epoch count.
    """
    generator = seeded_generator(seed)
    sample_generator = torch.Generator(device=device)
    sample_generator.manual_seed(seed)
    network = TwoTowerNetwork(
        n_users,
        n_items,
        settings.dimension,
        settings.temperature,
        settings.item_bias,
        settings.init_std,
        features,
        generator,
    ).to(device)
    optimizers = tower_optimizers(network, settings)
    stopper = EarlyStopping(patience=settings.patience, lower_is_better=False) if validation else None
    n_pairs = data.users.numel()

    def train_epoch(epoch: int) -> dict[str, float]:
        order = torch.randperm(n_pairs, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n_pairs, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            random_items = torch.randint(
                n_items, (settings.n_random_negatives,), generator=sample_generator, device=device
            )
            loss = in_batch_loss(
                network,
                data.users[batch],
                data.items[batch],
                data.history[batch],
                random_items,
                data.log_frequency,
                settings,
            )
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            total += loss.detach() * batch.numel()
        train_loss = float(total) / n_pairs
        if not np.isfinite(train_loss):
            raise FloatingPointError(f"{settings.family}: training loss became {train_loss} at epoch {epoch}")
        return {"train_loss": train_loss}

    def validate(relevant: sp.csr_matrix, excluded: sp.csr_matrix) -> float:
        items_side = network.item_vectors()
        return validation_ndcg(
            lambda users: network.query_vectors(users.to(device), data.user_history[users.to(device)]) @ items_side.T,
            relevant,
            excluded,
        )

    validate_epoch = functools.partial(validate, *validation) if validation else None
    history, best_epoch = run_epochs(settings.family, network, epochs, train_epoch, validate_epoch, stopper)
    return network.eval(), history, best_epoch
