"""Mult-VAE and Mult-DAE (Liang et al., 2018, "Variational Autoencoders for Collaborative Filtering", WWW).

Each user is their binary history row over the training items. Training: mini-batches of users
(dense rows built on the device from CSR), multinomial log-likelihood of the row under the
decoder's softmax, plus for Mult-VAE the KL term weighted by beta, annealed linearly per step
from 0 to `anneal_cap` over `anneal_epochs` epochs; input dropout; Adam with optional weight
decay. Early stopping on validation NDCG@10 (the validation users' training rows folded in,
training items excluded) with the best epoch restored, then by default a refit on train + valid
for the best epoch count. Scoring folds in the user's history (train + valid) through the
encoder's mean: no per-user parameters, so `score_history` also scores histories the model never
saw, without retraining, exactly as it scores its training users.

Defaults and the validation search behind them: `recsys_models/vae/__init__.py`.
"""

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.losses import gaussian_kl_divergence, multinomial_loss
from recsys_models.options import TrainingOptions
from recsys_models.training import (
    EarlyStopping,
    TorchTrainingConfig,
    refit_record,
    run_epochs,
    seeded_generator,
    shuffled_batches,
    training_default,
)
from recsys_models.tuning import FloatRange, IntRange, SearchSpace
from recsys_models.vae.network import MultVAENetwork
from recsys_models.validation_metrics import validation_ndcg
from recsys_models.warm_start import trained_parameters

SCORE_BATCH = 1024  # users per scoring batch


class AutoencoderConfig(TorchTrainingConfig):
    """Hyperparameters shared by Mult-VAE and Mult-DAE. A mini-batch holds users."""

    hidden: tuple[PositiveInt, ...] = Field(
        default=(600,), description="Hidden widths of the encoder (mirrored in the decoder)."
    )
    latent: PositiveInt = Field(default=200, description="Width of the latent code z.")
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0, description="Dropout on the normalised input row.")
    epochs: PositiveInt = training_default("epochs", 200)
    batch_size: PositiveInt = training_default("batch_size", 128)
    learning_rate: PositiveFloat = training_default("learning_rate", 0.001)
    weight_decay: NonNegativeFloat = Field(default=0.0, description="Adam weight decay (L2 on every weight).")
    min_rating: float | None = Field(
        default=None, description="Ratings at or above this count as interactions; None takes every one."
    )
    patience: PositiveInt = training_default("patience", 10)


class MultVAEConfig(AutoencoderConfig):
    """Mult-VAE: the autoencoder with a Gaussian latent layer and an annealed KL term."""

    search_space: ClassVar[SearchSpace] = {
        "latent": IntRange(32, 400, log=True),
        "dropout": FloatRange(0.0, 0.8),
        "learning_rate": FloatRange(1e-4, 1e-2, log=True),
        "anneal_cap": FloatRange(0.0, 1.0),
    }

    anneal_cap: float = Field(default=0.2, ge=0.0, le=1.0, description="Largest KL weight beta.")
    anneal_epochs: PositiveInt = Field(default=20, description="Epochs over which beta rises linearly to the cap.")


class MultDAEConfig(AutoencoderConfig):
    """Mult-DAE: the same autoencoder, deterministic, without the KL term."""

    search_space: ClassVar[SearchSpace] = {
        "latent": IntRange(32, 400, log=True),
        "dropout": FloatRange(0.0, 0.8),
        "learning_rate": FloatRange(1e-4, 1e-2, log=True),
    }


class MultVAE(Recommender):
    """Multinomial variational autoencoder over user histories; ranks, does not rate."""

    family = "mult_vae"
    config_type: ClassVar[type[BaseModel]] = MultVAEConfig
    config: MultVAEConfig | MultDAEConfig
    uses_validation = True
    variational: ClassVar[bool] = True

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        self._network: MultVAENetwork | None = None

    # --- training -------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        train_rows = train.positives(self.config.min_rating)
        validation = None
        if valid is not None and len(valid):
            relevant = valid.positives(self.config.min_rating)
            if relevant.nnz:
                validation = relevant
        self._network, self.history, best_epoch = self._train(train_rows, self.config.epochs, validation)
        if validation is not None and self.config.refit_on_full and valid is not None:
            full_rows = train.concat(valid).positives(self.config.min_rating)
            self._network, refit, _ = self._train(full_rows, best_epoch, None)
            self.history += [refit_record(record) for record in refit]

    def _train(
        self, rows: sp.csr_matrix, epochs: int, relevant: sp.csr_matrix | None
    ) -> tuple[MultVAENetwork, list[dict[str, float]], int]:
        """Train a fresh network on `rows`; with `relevant` (validation items), stop early on NDCG@10."""
        config, device = self.config, self.options.torch_device()
        active = np.flatnonzero(np.diff(rows.indptr))
        if active.size == 0:
            raise ValueError(f"{self.family}: no user has an interaction to train on (min_rating={config.min_rating})")
        generator = seeded_generator(self.options.seed)  # initialisation, then shuffling
        noise = torch.Generator(device=device)  # dropout and z, on the device
        noise.manual_seed(self.options.seed)
        network = MultVAENetwork(
            rows.shape[1], tuple(config.hidden), config.latent, self.variational, config.dropout, generator
        ).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        history_rows = DeviceRows(rows, device)
        users = torch.from_numpy(active).to(device)
        batches_per_epoch = -(-active.size // config.batch_size)
        anneal_cap = getattr(config, "anneal_cap", 0.0)
        anneal_steps = getattr(config, "anneal_epochs", 1) * batches_per_epoch
        step = 0

        def train_epoch(epoch: int) -> dict[str, float]:
            nonlocal step
            total, total_kl = torch.zeros((), device=device), torch.zeros((), device=device)
            beta = 0.0
            for batch in shuffled_batches(users.numel(), config.batch_size, generator, device):
                batch_users = users[batch]
                logits, mean, log_variance = network(*history_rows.entries(batch_users), noise)
                loss = multinomial_loss(logits, history_rows.dense(batch_users))
                step += 1
                if log_variance is not None:
                    beta = anneal_cap * min(1.0, step / anneal_steps)
                    kl = gaussian_kl_divergence(mean, log_variance)
                    loss = loss + beta * kl
                    total_kl += kl.detach() * batch.numel()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            record = {"train_loss": float(total) / users.numel()}
            if self.variational:
                record |= {"kl": float(total_kl) / users.numel(), "beta": beta}
            return record

        validate, stopper = None, None
        if relevant is not None:
            exclude = rows

            def validate() -> float:
                return validation_ndcg(
                    lambda batch_users: self._logits(network, history_rows, batch_users), relevant, exclude
                )

            stopper = EarlyStopping(patience=config.patience, lower_is_better=False)
        history, best_epoch = run_epochs(self.family, network, epochs, train_epoch, validate, stopper)
        return network, history, best_epoch

    @staticmethod
    def _logits(network: MultVAENetwork, rows: "DeviceRows", users: torch.Tensor) -> torch.Tensor:
        """Fold-in: the decoder's logits at the encoder's mean for the users' history rows."""
        return network.decode(network.encode(*rows.entries(users))[0])

    # --- scoring --------------------------------------------------------------------------
    @property
    def network(self) -> MultVAENetwork:
        return self._require(self._network)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Logits from each user's history (train + valid), folded in; higher is better."""
        return self.score_rows(self.seen[self._check_users(user_indices)])

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """The encoder on the history's items (every interaction, as `score` reads train + valid): exact."""
        return self.score_rows(history.rows.tocsr(values="binary"))

    @torch.no_grad()
    def score_rows(self, history: sp.spmatrix) -> np.ndarray:
        """Scores of binary history rows over the model's items, shape (n_rows, n_items).

        `history` is a (n_rows, n_items) sparse matrix whose stored entries are the items a user
        interacted with (a user unknown at training time included).
        """
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape[1] != self.n_items:
            raise ValueError(f"history has {history.shape[1]} columns, expected the model's {self.n_items} items")
        history.data[:] = 1.0
        network = self.network.eval()
        device = next(network.parameters()).device
        rows = DeviceRows(history, device)
        scores = [
            self._logits(network, rows, torch.arange(start, min(start + SCORE_BATCH, history.shape[0]))).cpu()
            for start in range(0, history.shape[0], SCORE_BATCH)
        ]
        return torch.cat(scores).numpy() if scores else np.zeros((0, self.n_items), dtype=np.float32)

    # --- persistence ----------------------------------------------------------------------
    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        return {name: tensor.cpu().numpy() for name, tensor in self.network.state_dict().items()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        config = self.config
        n_items = state["input_weight"].shape[0]
        network = MultVAENetwork(n_items, tuple(config.hidden), config.latent, self.variational, config.dropout)
        network.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        self._network = network.to(self.options.torch_device()).eval()


class MultDAE(MultVAE):
    """Multinomial denoising autoencoder (Liang et al., 2018): Mult-VAE without the KL term."""

    family = "mult_dae"
    config_type = MultDAEConfig
    config: MultDAEConfig
    variational = False


class DeviceRows:
    """A CSR matrix's index arrays on a device; a batch of its rows as entries or as dense rows."""

    def __init__(self, matrix: sp.csr_matrix, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.n_columns = matrix.shape[1]
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(self.device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(self.device)

    def entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(columns, offsets): the rows' stored columns laid end to end, and where each row starts."""
        rows = rows.to(self.device)
        start = self.indptr[rows]
        count = self.indptr[rows + 1] - start
        offsets = torch.cumsum(count, 0) - count
        row_of_entry = torch.repeat_interleave(torch.arange(rows.numel(), device=self.device), count)
        position = torch.arange(row_of_entry.numel(), device=self.device) - offsets[row_of_entry]
        return self.indices[start[row_of_entry] + position], offsets

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), n_columns) float32 tensor with ones at the rows' stored entries."""
        columns, offsets = self.entries(rows)
        count = torch.diff(offsets, append=offsets.new_tensor([columns.numel()]))
        row_of_entry = torch.repeat_interleave(torch.arange(offsets.numel(), device=self.device), count)
        dense = torch.zeros(offsets.numel(), self.n_columns, device=self.device)
        dense[row_of_entry, columns] = 1.0
        return dense
