"""BPR-MF: pairwise ranking of a user's positives above sampled negatives (Rendle et al., 2009).

Implicit feedback from the ratings: every interaction (or those at or above `min_rating`) is a
positive. Mini-batches of positive pairs, each with `n_negatives` items drawn uniformly or by
popularity (count ** alpha) and never among the user's positives when `reject_positives`; BPR
loss plus L2 on the touched rows; Adam or Adagrad. Early stopping on validation NDCG@10 (full
ranking, training items excluded), then a refit on train + valid for the best epoch count.

Defaults (`--validation` of benchmarks/protocol_quality.py: the protocol re-applied to the
training part, test never seen; NDCG@10 on that inner test, seed 42). A first grid, learning
rate {0.002, 0.005, 0.01, 0.02} x l2 {1e-5, 1e-4, 1e-3} x sampling {uniform, popularity 0.75}
with batch 4096 and patience 3, stopped within 5-7 epochs near popularity (coverage@10 about
0.02 on ml-latest-small): validation NDCG@10 is noisy and keeps rising slowly for dozens of
epochs, and l2 <= 1e-3 overfits. The second grid used patience 8, batch 1024, 64 factors:

    lr, l2, negatives, sampling         P4 ml-100k  P4 ml-small  P3 ml-100k  P3 ml-small
    0.002, 0.003, 1, uniform              0.145       0.099        0.057       0.013
    0.002, 0.01, 1, uniform               0.138       0.098        0.052       0.015
    0.002, 0.003, 5, uniform              0.149       0.099        0.057       0.032
    0.002, 0.003, 1, popularity 0.5       0.128       0.087        0.064       0.028
    0.002, 0.003, 5, popularity 0.5       0.133       0.092        0.062       0.035
    0.005, 0.01, 5, popularity 0.5        0.145       0.097        0.063       0.033   <- default
    (128 factors with the first row)      0.145       0.095        0.056       0.015
    (popularity baseline)                 0.079       0.081        0.033       0.017

Adagrad (lr 0.05-0.1) was no better than Adam in a smaller probe.

Speed: an epoch takes at most `max_batches_per_epoch` steps (larger data get larger batches; the
MovieLens sets keep batch 1024, so the figures above stand), each step looks every row up once
(`BPRMFNetwork.batch_terms`) and runs the fused Adam kernel, the sampler checks positives in a
bitmap, and early stopping scores at most `validation_users` users per epoch.
"""

import logging
from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.bpr_mf.network import BPRMFNetwork
from recsys_models.fold_in import bpr_loss_of, fold_in_implicit
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.losses import bpr_loss
from recsys_models.sampling import NegativeSampler, popularity_weights
from recsys_models.training import (
    EarlyStopping,
    TorchTrainingConfig,
    run_epochs,
    seeded_generator,
    shuffled_batches,
    training_default,
)
from recsys_models.tuning import FloatRange, IntRange, SearchSpace
from recsys_models.validation_metrics import validation_ndcg
from recsys_models.warm_start import trained_parameters

logger = logging.getLogger(__name__)


class BPRMFConfig(TorchTrainingConfig):
    """Hyperparameters of BPR-MF; defaults from the validation search in the module docstring.
    A mini-batch holds positive pairs (batch_size at least: see max_batches_per_epoch)."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(16, 256, log=True),
        "learning_rate": FloatRange(1e-4, 5e-2, log=True),
        "l2": FloatRange(1e-5, 1.0, log=True),
        "n_negatives": IntRange(1, 10),
    }

    n_factors: PositiveInt = Field(default=64, description="Latent dimensions.")
    epochs: PositiveInt = training_default("epochs", 100)
    max_batches_per_epoch: PositiveInt = Field(
        default=200,
        description="Most optimizer steps per epoch: larger data get larger batches, ceil(pairs / this).",
    )
    optimizer: Literal["adam", "adagrad"] = Field(default="adam", description="Optimizer of the embeddings.")
    l2: NonNegativeFloat = Field(default=0.01, description="L2 weight on the squared norms of a batch's rows.")
    n_negatives: PositiveInt = Field(default=5, description="Negatives drawn per positive pair.")
    negative_sampling: Literal["uniform", "popularity"] = Field(
        default="popularity", description="Draw negatives uniformly or in proportion to count ** popularity_alpha."
    )
    popularity_alpha: NonNegativeFloat = Field(
        default=0.5, description="Exponent of the training counts for popularity sampling."
    )
    reject_positives: bool = Field(default=True, description="Redraw a negative that is one of the user's positives.")
    item_bias: bool = Field(default=True, description="Add a learned per-item bias to the dot product.")
    min_rating: float | None = Field(
        default=None, description="Ratings at or above this value are positives; None makes every interaction one."
    )
    init_std: PositiveFloat = Field(default=0.01, description="Standard deviation of the initial factors.")
    patience: PositiveInt = training_default("patience", 8)
    validation_users: PositiveInt = Field(
        default=5000, description="Most validation users scored per epoch; beyond this a seeded sample of them."
    )


class BPRMF(Recommender):
    """Matrix factorisation trained with the BPR criterion on implicit feedback; ranks, does not rate."""

    family = "bpr_mf"
    config_type = BPRMFConfig
    config: BPRMFConfig
    predicts_ratings = False
    uses_validation = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        train_positives = train.positives(self.config.min_rating)
        validation = None
        if valid is not None and len(valid):
            relevant = self._validation_sample(valid.positives(self.config.min_rating))
            if relevant.nnz:
                validation = (relevant, train.tocsr(values="binary"))
        self._network, self.history, best_epoch = self._train(train_positives, self.config.epochs, validation)
        if validation is not None and valid is not None and self.config.refit_on_full:
            full_positives = train.concat(valid).positives(self.config.min_rating)
            self._network, refit_history, _ = self._train(full_positives, best_epoch, None)
            self.history += [{"epoch": r["epoch"], "refit_train_loss": r["train_loss"]} for r in refit_history]

    def _validation_sample(self, relevant: sp.csr_matrix) -> sp.csr_matrix:
        """`relevant` with the rows of at most `validation_users` users (a seeded sample) kept."""
        users = np.flatnonzero(np.diff(relevant.indptr))
        if users.size <= self.config.validation_users:
            return relevant
        kept = np.random.default_rng(self.options.seed).choice(users, self.config.validation_users, replace=False)
        mask = np.zeros(relevant.shape[0], dtype=np.float32)
        mask[kept] = 1.0
        sampled = sp.csr_matrix(sp.diags(mask) @ relevant)
        sampled.eliminate_zeros()
        return sampled

    def _sampler(self, positives: sp.csr_matrix, device: str) -> NegativeSampler:
        config = self.config
        weights = None
        if config.negative_sampling == "popularity":
            weights = popularity_weights(np.diff(positives.tocsc().indptr), config.popularity_alpha)
        return NegativeSampler(
            positives.shape[1], weights, positives if config.reject_positives else None, device=device
        )

    def _train(
        self, positives: sp.csr_matrix, epochs: int, validation: tuple[sp.csr_matrix, sp.csr_matrix] | None
    ) -> tuple[BPRMFNetwork, list[dict[str, float]], int]:
        """Train a fresh network; with `validation` (relevant, excluded), stop early on NDCG@10."""
        if positives.nnz == 0:
            threshold = self.config.min_rating
            raise ValueError(f"{self.family}: no positive interactions to train on (min_rating={threshold})")
        config, device = self.config, self.options.torch_device()
        generator = seeded_generator(self.options.seed)  # initialisation, then shuffling
        sample_generator = torch.Generator(device=device)
        sample_generator.manual_seed(self.options.seed)
        n_users, n_items = positives.shape
        network = BPRMFNetwork(n_users, n_items, config.n_factors, config.init_std, config.item_bias, generator)
        network = network.to(device)
        optimizer: torch.optim.Optimizer
        if config.optimizer == "adam":  # the fused kernel: one pass over the tables per step
            optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, fused=True)
        else:
            optimizer = torch.optim.Adagrad(network.parameters(), lr=config.learning_rate)
        sampler = self._sampler(positives, device)
        pairs = positives.tocoo()
        users = torch.from_numpy(pairs.row.astype(np.int64)).to(device)
        items = torch.from_numpy(pairs.col.astype(np.int64)).to(device)
        usable = sampler.has_negatives(users)
        if not usable.all():  # a user holding every item of positive sampling weight forms no BPR triple
            logger.warning(
                "%s: leaving out %d users whose positives cover every item that can be drawn as a negative",
                self.family,
                torch.unique(users[~usable]).numel(),
            )
            users, items = users[usable], items[usable]
            if users.numel() == 0:
                raise ValueError(f"{self.family}: no user has an item left to draw as a negative")
        batch_size = max(config.batch_size, -(-users.numel() // config.max_batches_per_epoch))

        def train_epoch(epoch: int) -> dict[str, float]:
            total = torch.zeros((), device=device)
            for batch in shuffled_batches(users.numel(), batch_size, generator, device):
                u, i = users[batch], items[batch]
                j = sampler.sample(u, config.n_negatives, sample_generator)
                positive, negative, penalty = network.batch_terms(u, i, j)
                loss = bpr_loss(positive, negative) + config.l2 * penalty
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            return {"train_loss": float(total) / users.numel()}

        validate, stopper = None, None
        if validation is not None:
            validate = partial(validation_ndcg, partial(self._score_on, network, device), *validation)
            stopper = EarlyStopping(patience=config.patience, lower_is_better=False)
        history, best_epoch = run_epochs(self.family, network, epochs, train_epoch, validate, stopper)
        return network.eval(), history, best_epoch

    @staticmethod
    def _score_on(network: BPRMFNetwork, device: str, users: torch.Tensor) -> torch.Tensor:
        return network.score_all(users.to(device))

    @torch.no_grad()
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.array(self._check_users(user_indices)))
        device = next(self._network.parameters()).device
        return self._network.score_all(users.to(device)).cpu().numpy()

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Fold-in: the user vector minimising the BPR loss (plus its L2 term) for the history's
        positives with the items fixed, negatives in expectation over the configured sampling
        (`fold_in`); close to a trained user's vector, which stochastic training only approaches."""
        config, network = self.config, self._network
        items, item_bias = network.item_factors.weight.detach(), network.item_bias
        bias = (
            item_bias.weight.detach().T
            if item_bias is not None
            else torch.zeros(1, items.shape[0], device=items.device)
        )
        weights = None
        if config.negative_sampling == "popularity":
            weights = popularity_weights(np.diff(self.seen.tocsc().indptr), config.popularity_alpha)
        return fold_in_implicit(
            lambda vectors: vectors @ items.T + bias,
            network.user_factors.weight.detach().mean(0),
            history.rows.positives(config.min_rating),
            weights,
            config.reject_positives,
            config.l2,
            bpr_loss_of,
        )

    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        return {name: tensor.cpu().numpy() for name, tensor in self._network.state_dict().items()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        n_users, n_factors = state["user_factors.weight"].shape
        n_items = state["item_factors.weight"].shape[0]
        self._network = BPRMFNetwork(n_users, n_items, n_factors, self.config.init_std, "item_bias.weight" in state)
        self._network.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        self._network.to(self.options.torch_device()).eval()
