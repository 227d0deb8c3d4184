"""What GRU4Rec and SASRec share: the next-item trainer and the Recommender around a sequence network.

A sequence network maps left-padded item sequences (batch, length) to one hidden vector per
position (`encode`); the score of item i after position t is the dot product of that vector
with the item's output embedding (`item_weights`, tied to the input embeddings). Training
predicts every next item of every user's training sequence (`sequences.training_windows`), in
mini-batches of windows from many users at once, with one of these losses:

- `cross_entropy`: softmax over the whole catalogue (full cross-entropy; Klenitskiy & Vasilev
  2023 show it beats SASRec's original sampled BCE);
- `sampled_softmax`: softmax over the target and `n_negatives` items shared by the batch, drawn
  by count ** popularity_alpha, with the logQ correction and accidental hits removed (for large
  catalogues, as in GRU4Rec's additional negative samples);
- `bce`: the original SASRec objective, sigmoid of the target against `n_negatives` negatives
  per position drawn uniformly outside the user's training items;
- `auto` (default): `cross_entropy` up to `full_softmax_max_items` items, `sampled_softmax`
  above (on 2 loaded CPU cores, the full softmax over ml-latest-small's 9,700 items made a
  GRU4Rec epoch 10x slower than 256 sampled negatives: benchmarks/sequential_speed.py).

Early stopping on validation NDCG@10 (full ranking, training items excluded), input = each
user's training sequence; the best epoch's weights are kept, optionally followed by a refit on
train + valid for that many epochs. Scoring reads each user's last `max_length` items of train +
valid, which are part of the saved state, so a loaded model scores exactly as the fitted one.
"""

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.losses import binary_cross_entropy_loss
from recsys_models.sampling import NegativeSampler, popularity_weights
from recsys_models.sequential.sequences import PAD, recent_items, training_windows, user_sequences
from recsys_models.training import (
    EarlyStopping,
    TorchTrainingConfig,
    refit_record,
    run_epochs,
    seeded_generator,
    shuffled_batches,
    training_default,
)
from recsys_models.validation_metrics import validation_ndcg
from recsys_models.warm_start import trained_parameters


class SequenceNetwork(torch.nn.Module):
    """What a sequence family's network offers the shared trainer and scorer (GRU4Rec's, SASRec's)."""

    def encode(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Hidden states (n, length, dim) after each position of `inputs` (n, length) item indices + 1."""
        raise NotImplementedError

    def item_weights(self) -> torch.Tensor:
        """The output item embeddings (n_items, dim): a hidden state's scores are hidden @ item_weights().T."""
        raise NotImplementedError


# loss(network, hidden (n, dim), target item indices (n,), their users (n,), device generator)
LossFunction = Callable[[SequenceNetwork, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]

SCORE_BATCH = 1024  # users per forward pass when scoring
NETWORK_PREFIX = "network."


class NextItemConfig(TorchTrainingConfig):
    """Training hyperparameters shared by the sequence families. A mini-batch holds windows (of
    max_length steps)."""

    max_length: PositiveInt = Field(default=50, description="Most recent items a prediction reads (window length).")
    epochs: PositiveInt = training_default("epochs", 50)
    batch_size: PositiveInt = training_default("batch_size", 128)
    learning_rate: PositiveFloat = training_default("learning_rate", 3e-3)
    weight_decay: NonNegativeFloat = Field(default=0.0, description="Adam L2 weight decay on every parameter.")
    loss: Literal["auto", "cross_entropy", "sampled_softmax", "bce"] = Field(
        default="auto",
        description="Full softmax over items, sampled softmax, or BCE with negatives; auto: full softmax up to "
        "full_softmax_max_items items, sampled softmax above.",
    )
    full_softmax_max_items: PositiveInt = Field(
        default=4096, description="Largest catalogue that loss='auto' trains with the full softmax."
    )
    n_negatives: PositiveInt = Field(
        default=256, description="Negatives: shared per batch (sampled_softmax) or per position (bce)."
    )
    popularity_alpha: NonNegativeFloat = Field(
        default=0.75, description="sampled_softmax draws negatives in proportion to count ** popularity_alpha."
    )
    refit_on_full: bool = training_default("refit_on_full", False)


class SequenceRecommender(Recommender):
    """A Recommender over a sequence network; subclasses build the network from their config."""

    config: NextItemConfig  # each subclass names its own
    predicts_ratings = False
    uses_validation = True

    @abstractmethod
    def _build_network(self, n_items: int, generator: torch.Generator | None) -> SequenceNetwork:
        """A fresh network over `n_items` items, initialised from `generator` (None: weights follow).

        The network has `encode(inputs (batch, length), generator) -> (batch, length, dim)` and
        `item_weights() -> (n_items, dim)`, the output embeddings of the items in index order.
        """

    # --- training -------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        train_sequences = user_sequences(train)
        validation = None
        if valid is not None and len(valid):
            recent = recent_items(train_sequences, config.max_length)
            validation = (recent, valid.tocsr(values="binary"), train.tocsr(values="binary"))
        self._network, self.history, best_epoch = self._train(train, config.epochs, validation)
        full = train if valid is None else train.concat(valid)
        if validation is not None and config.refit_on_full:
            self._network, refit_history, _ = self._train(full, best_epoch, None)
            self.history += [refit_record(record) for record in refit_history]
        self._recent = recent_items(user_sequences(full), config.max_length)

    def _train(
        self, data: Interactions, epochs: int, validation: tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix] | None
    ) -> tuple[SequenceNetwork, list[dict[str, float]], int]:
        """Train a fresh network on `data`'s sequences; with `validation`, stop early on NDCG@10."""
        config, device = self.config, self.options.torch_device()
        windows = training_windows(user_sequences(data), config.max_length)
        if windows.n_tokens == 0:
            raise ValueError(f"{self.family}: no user has two interactions, so there is no next item to learn")
        generator = seeded_generator(self.options.seed)  # initialisation, then shuffling
        device_generator = torch.Generator(device=device)
        device_generator.manual_seed(self.options.seed)
        network = self._build_network(data.n_items, generator).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        loss_of = self._loss_function(data, device)
        inputs = torch.from_numpy(windows.inputs).to(device)
        targets = torch.from_numpy(windows.targets).to(device)
        users = torch.from_numpy(windows.users).to(device)
        stopper = EarlyStopping(patience=config.patience, lower_is_better=False) if validation else None

        def train_epoch(epoch: int) -> dict[str, float]:
            total = torch.zeros((), device=device)
            for batch in shuffled_batches(inputs.shape[0], config.batch_size, generator, device):
                batch_targets = targets[batch]
                mask = batch_targets != PAD
                hidden = network.encode(inputs[batch], device_generator)[mask]
                batch_users = users[batch][:, None].expand_as(mask)[mask]
                loss = loss_of(network, hidden, batch_targets[mask] - 1, batch_users, device_generator)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * mask.sum()
            return {"train_loss": float(total) / windows.n_tokens}

        def validate() -> float:
            if validation is None:
                raise RuntimeError("validate needs a validation tail")
            recent, relevant, exclude = validation
            return validation_ndcg(lambda batch: _scores(network, recent[batch.numpy()]), relevant, exclude)

        history, best_epoch = run_epochs(
            self.family, network, epochs, train_epoch, validate if validation is not None else None, stopper
        )
        return network, history, best_epoch

    def _loss_function(self, data: Interactions, device: str) -> LossFunction:
        """The configured loss, with its negative sampler built for `data`."""
        config = self.config
        loss = config.loss
        if loss == "auto":
            loss = "cross_entropy" if data.n_items <= config.full_softmax_max_items else "sampled_softmax"
        if loss == "cross_entropy":
            return lambda network, hidden, targets, users, generator: F.cross_entropy(
                hidden @ network.item_weights().T, targets
            )
        if loss == "sampled_softmax":
            weights = popularity_weights(data.item_counts(), config.popularity_alpha)
            sampler = NegativeSampler(data.n_items, weights, device=device)
            log_q = torch.log(torch.from_numpy(weights / weights.sum()).float().to(device).clamp_min(1e-12))

            def sampled(network, hidden, targets, users, generator) -> torch.Tensor:
                item_weights = network.item_weights()
                negatives = sampler.sample(torch.zeros(1, dtype=torch.int64), config.n_negatives, generator)[0]
                positive = (hidden * item_weights[targets]).sum(-1) - log_q[targets]
                negative = hidden @ item_weights[negatives].T - log_q[negatives]
                negative = negative.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
                logits = torch.cat([positive[:, None], negative], dim=1)
                return F.cross_entropy(logits, torch.zeros_like(targets))

            return sampled
        positives = data.tocsr(values="binary")
        sampler = NegativeSampler(data.n_items, None, positives, device=device)
        usable = sampler.has_negatives(torch.arange(data.n_users))
        if not bool(usable.all()):
            raise ValueError(f"{self.family}: bce needs every user to leave some item unseen; use cross_entropy")

        def bce(network, hidden, targets, users, generator) -> torch.Tensor:
            item_weights = network.item_weights()
            negatives = sampler.sample(users, config.n_negatives, generator)
            positive = (hidden * item_weights[targets]).sum(-1)
            negative = (hidden[:, None, :] * item_weights[negatives]).sum(-1)
            return binary_cross_entropy_loss(positive, negative)

        return bce

    # --- scoring and state ----------------------------------------------------------------
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = self._check_users(user_indices)
        return self._score_recent(self._require(getattr(self, "_recent", None))[users])

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """The network over the history's last `max_length` items, in its order: exact."""
        return self._score_recent(recent_items(user_sequences(history.rows), self.config.max_length))

    @torch.no_grad()
    def _score_recent(self, recent: np.ndarray) -> np.ndarray:
        """Scores after each row of recent items (n_rows, max_length; +1, PAD-padded on the left)."""
        parts = [
            _scores(self._network, recent[start : start + SCORE_BATCH]).cpu().numpy()
            for start in range(0, recent.shape[0], SCORE_BATCH)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.n_items), dtype=np.float32)

    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        state = {NETWORK_PREFIX + name: t.cpu().numpy() for name, t in self._network.state_dict().items()}
        return state | {"recent": self._recent}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._recent = state["recent"]
        network = self._build_network(self.n_items, None)
        weights = {
            name[len(NETWORK_PREFIX) :]: torch.from_numpy(array)
            for name, array in state.items()
            if name.startswith(NETWORK_PREFIX)
        }
        network.load_state_dict(weights)
        self._network = network.to(self.options.torch_device()).eval()


def _scores(network: SequenceNetwork, recent: np.ndarray) -> torch.Tensor:
    """Scores of every item after each row of `recent` (n, length), float32 on the network's device."""
    device = next(network.parameters()).device
    hidden = network.encode(torch.from_numpy(np.ascontiguousarray(recent)).to(device))[:, -1]
    return hidden @ network.item_weights().T
