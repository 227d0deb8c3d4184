"""GMF, MLP and NeuMF (He et al., 2017, "Neural Collaborative Filtering", WWW): one trainer for three families.

Implicit objective (the paper's): every interaction, or those rated at least `min_rating`, is a
positive; each positive of a mini-batch gets `n_negatives` items sampled uniformly or by
popularity, never among the user's positives; binary cross-entropy on the logits. Explicit
objective: a regression head (the same output layer, its bias started at the global mean)
fitted to the ratings by squared error, so the family then predicts ratings and ranks by them.
Adam, L2 on the embedding rows a batch touches, early stopping on validation NDCG@10 (implicit)
or RMSE (explicit) with the best epoch restored, then by default a refit on train + valid for
the best epoch count. NeuMF may start from a GMF and an MLP trained first (`pretrain`), fused
with weight `alpha` (section 3.4.1 of the paper), and is then fine-tuned at
`finetune_learning_rate`.

Defaults and the validation search behind them: `recsys_models/ncf/__init__.py`.
"""

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.fold_in import bce_loss_of, fold_in, fold_in_implicit, squared_loss_of
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.losses import binary_cross_entropy_loss
from recsys_models.ncf.network import Kind, NCFNetwork
from recsys_models.options import TrainingOptions
from recsys_models.sampling import NegativeSampler, popularity_weights
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
from recsys_models.validation_metrics import validation_ndcg
from recsys_models.warm_start import active_warm_start, trained_parameters


class NCFTrainingConfig(TorchTrainingConfig):
    """Training hyperparameters shared by GMF, MLP and NeuMF. A mini-batch holds training pairs
    (positives or ratings)."""

    objective: Literal["implicit", "explicit"] = Field(
        default="implicit",
        description="implicit: BCE on positives and sampled negatives, ranks only; explicit: squared error on ratings.",
    )
    batch_size: PositiveInt = training_default("batch_size", 2048)
    l2: NonNegativeFloat = Field(
        default=0.0001, description="L2 weight on the squared norms of a batch's embedding rows."
    )
    n_negatives: PositiveInt = Field(default=4, description="Sampled negatives per positive (implicit objective).")
    negative_sampling: Literal["uniform", "popularity"] = Field(
        default="uniform", description="Draw negatives uniformly or in proportion to count ** popularity_alpha."
    )
    popularity_alpha: NonNegativeFloat = Field(
        default=0.5, description="Exponent of the counts for popularity sampling."
    )
    min_rating: float | None = Field(
        default=None, description="Implicit objective: ratings at or above this are positives; None takes every one."
    )
    init_std: PositiveFloat = Field(default=0.01, description="Standard deviation of the initial embeddings.")
    patience: PositiveInt = training_default("patience", 8)


class GMFConfig(NCFTrainingConfig):
    """Generalised matrix factorisation: the element-wise product of the embeddings, then a linear output."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(8, 128, log=True),
        "learning_rate": FloatRange(1e-4, 2e-2, log=True),
        "l2": FloatRange(1e-6, 1e-2, log=True),
        "n_negatives": IntRange(1, 8),
    }

    n_factors: PositiveInt = Field(default=32, description="Embedding width (predictive factors).")


class MLPConfig(NCFTrainingConfig):
    """An MLP over the concatenated user and item embeddings."""

    search_space: ClassVar[SearchSpace] = {
        "learning_rate": FloatRange(1e-4, 2e-2, log=True),
        "l2": FloatRange(1e-6, 1e-2, log=True),
        "n_negatives": IntRange(1, 8),
    }

    layers: tuple[PositiveInt, ...] = Field(
        default=(64, 32, 16, 8), description="Tower widths; the first is the concatenated embeddings' width (even)."
    )


class NeuMFConfig(NCFTrainingConfig):
    """GMF and MLP branches with their own embeddings, fused by one output layer."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(8, 64, log=True),
        "learning_rate": FloatRange(1e-4, 2e-2, log=True),
        "l2": FloatRange(1e-6, 1e-2, log=True),
        "n_negatives": IntRange(1, 8),
    }

    n_factors: PositiveInt = Field(default=32, description="GMF embedding width.")
    layers: tuple[PositiveInt, ...] = Field(default=(64, 32, 16, 8), description="MLP tower widths, as for `mlp`.")
    pretrain: bool = Field(default=False, description="Start from a trained GMF and a trained MLP (same settings).")
    alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Weight of the GMF branch when fusing pretrained weights."
    )
    finetune_learning_rate: PositiveFloat = Field(
        default=0.0005, description="Adam step size of NeuMF after pretraining."
    )


class NCFRecommender(Recommender):
    """The trainer and scorer of the three NCF families; `kind` picks the network."""

    kind: ClassVar[Kind]
    config: NCFTrainingConfig  # GMFConfig, MLPConfig or NeuMFConfig: each subclass names its own
    uses_validation = True

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        # the objective, not the class, decides whether this model predicts ratings
        self.predicts_ratings = self.config.objective == "explicit"  # type: ignore[misc]
        self._network: NCFNetwork | None = None
        self._rating_range = (0.0, 0.0)
        self._global_mean = 0.0

    # --- training -------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        has_valid = valid is not None and len(valid) > 0
        full = train.concat(valid) if valid is not None and has_valid else train
        self._global_mean = float(full.rating.mean())
        self._rating_range = (float(full.rating.min()), float(full.rating.max()))
        network, self.history, best_epochs = self._train_kind(self.kind, train, valid if has_valid else None, None)
        if has_valid and config.refit_on_full:
            network, refit, _ = self._train_kind(self.kind, full, None, best_epochs)
            self.history += [refit_record(record) for record in refit]
        self._network = network

    def _train_kind(
        self, kind: Kind, train: Interactions, valid: Interactions | None, epochs: dict[str, int] | None
    ) -> tuple[NCFNetwork, list[dict[str, float]], dict[str, int]]:
        """Train a fresh `kind` network (NeuMF with pretraining trains its two branches first).

        `epochs` fixes the epoch count per kind (refit); otherwise `config.epochs` with early stopping.
        """
        config = self.config
        generator = seeded_generator(self.options.seed)
        history: list[dict[str, float]] = []
        best: dict[str, int] = {}
        network = self._network_of(kind, train, generator)
        learning_rate = config.learning_rate
        if kind == "neumf" and isinstance(config, NeuMFConfig) and config.pretrain:
            if active_warm_start() is None:  # a warm start begins from the earlier fit's fused network instead
                branches = {}
                for branch in ("gmf", "mlp"):
                    branches[branch], branch_history, branch_best = self._train_kind(branch, train, valid, epochs)
                    history += [
                        {f"{branch}_{key}" if key != "epoch" else key: value for key, value in record.items()}
                        for record in branch_history
                    ]
                    best |= branch_best
                network.fuse(branches["gmf"], branches["mlp"], config.alpha)
            learning_rate = config.finetune_learning_rate
        own_history, best[kind] = self._train_network(
            network, train, valid, (epochs or {}).get(kind, config.epochs), learning_rate, generator
        )
        return network, history + own_history, best

    def _network_of(self, kind: Kind, train: Interactions, generator: torch.Generator) -> NCFNetwork:
        config = self.config
        return NCFNetwork(
            train.n_users,
            train.n_items,
            kind,
            getattr(config, "n_factors", 1),
            tuple(getattr(config, "layers", ())),
            config.init_std,
            output_bias=self._global_mean if config.objective == "explicit" else 0.0,
            generator=generator,
        ).to(self.options.torch_device())

    def _train_network(
        self,
        network: NCFNetwork,
        train: Interactions,
        valid: Interactions | None,
        epochs: int,
        learning_rate: float,
        generator: torch.Generator,
    ) -> tuple[list[dict[str, float]], int]:
        """Mini-batch Adam over the training pairs; with `valid`, early stopping on the validation metric."""
        config, device = self.config, self.options.torch_device()
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        explicit = config.objective == "explicit"
        if explicit:
            users, items = torch.from_numpy(train.user_idx).to(device), torch.from_numpy(train.item_idx).to(device)
            ratings = torch.from_numpy(train.rating).to(device)
        else:
            positives = train.positives(self.config.min_rating)
            pairs = positives.tocoo()
            users = torch.from_numpy(pairs.row.astype(np.int64)).to(device)
            items = torch.from_numpy(pairs.col.astype(np.int64)).to(device)
            sampler = self._sampler(positives, device)
            keep = sampler.has_negatives(users)
            users, items = users[keep], items[keep]
            sample_generator = torch.Generator(device=device)
            sample_generator.manual_seed(self.options.seed)
        if users.numel() == 0:
            raise ValueError(f"{self.family}: no training pairs (min_rating={config.min_rating})")

        def train_epoch(epoch: int) -> dict[str, float]:
            total = torch.zeros((), device=device)
            for batch in shuffled_batches(users.numel(), config.batch_size, generator, device):
                u, i = users[batch], items[batch]
                if explicit:
                    loss = ((network(u, i) - ratings[batch]) ** 2).mean()
                    touched = i
                else:
                    j = sampler.sample(u, config.n_negatives, sample_generator)
                    loss = binary_cross_entropy_loss(network(u, i), network(u[:, None], j))
                    touched = torch.cat([i, j.view(-1)])
                if config.l2:
                    loss = loss + config.l2 * network.penalty(u, touched)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            return {"train_loss": float(total) / users.numel()}

        validate, stopper, metric = None, None, "valid_ndcg_at_10"
        if valid is not None:
            if explicit:
                validate, metric = self._rmse_of(network, valid), "valid_rmse"
                stopper = EarlyStopping(patience=config.patience, lower_is_better=True)
            else:
                relevant = valid.positives(self.config.min_rating)
                if relevant.nnz:
                    exclude = train.tocsr(values="binary")
                    validate = lambda: validation_ndcg(  # noqa: E731
                        lambda batch_users: network.score_all(batch_users.to(device)), relevant, exclude
                    )
                    stopper = EarlyStopping(patience=config.patience, lower_is_better=False)
        return run_epochs(self.family, network, epochs, train_epoch, validate, stopper, metric)

    def _rmse_of(self, network: NCFNetwork, data: Interactions) -> Any:
        device = self.options.torch_device()
        users, items = torch.from_numpy(data.user_idx).to(device), torch.from_numpy(data.item_idx).to(device)
        low, high = self._rating_range
        ratings = torch.from_numpy(data.rating).to(device)
        return lambda: float(torch.sqrt(((network(users, items).clamp(low, high) - ratings) ** 2).mean()))

    def _sampler(self, positives: sp.csr_matrix, device: str) -> NegativeSampler:
        weights = None
        if self.config.negative_sampling == "popularity":
            weights = popularity_weights(np.diff(positives.tocsc().indptr), self.config.popularity_alpha)
        return NegativeSampler(positives.shape[1], weights, positives, device=device)

    # --- scoring --------------------------------------------------------------------------
    @property
    def network(self) -> NCFNetwork:
        return self._require(self._network)

    @torch.no_grad()
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.array(self._check_users(user_indices)))
        network = self.network
        return network.score_all(users.to(next(network.parameters()).device)).cpu().numpy()

    @torch.no_grad()
    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Predicted ratings (explicit objective), clipped to the training rating range."""
        if not self.predicts_ratings:
            return super().predict(user_indices, item_indices)
        users = torch.from_numpy(np.array(self._check_users(user_indices)))
        items = torch.from_numpy(np.array(item_indices, dtype=np.int64))
        device = next(self.network.parameters()).device
        return np.clip(self.network(users.to(device), items.to(device)).cpu().numpy(), *self._rating_range)

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Fold-in: the user's embedding rows minimising the training objective with every item and
        network weight fixed (`fold_in`, L-BFGS from the mean trained user): the log loss over the
        history's positives and, in expectation, the sampler's negatives (implicit), or squared
        error on its ratings (explicit), plus the L2 term. Convex in the user for GMF; a local
        minimum for MLP and NeuMF. Close to a trained user's scores."""
        config, network = self.config, self.network
        users = torch.arange(len(self.users), device=next(network.parameters()).device)
        initial = network.user_rows(users).detach().mean(0)
        if config.objective == "explicit":
            vectors = fold_in(network.score_embedded, squared_loss_of(history), initial, history.lengths, config.l2, 1)
            with torch.no_grad():
                return network.score_embedded(vectors).cpu().numpy()
        weights = None
        if config.negative_sampling == "popularity":
            weights = popularity_weights(np.diff(self.seen.tocsc().indptr), config.popularity_alpha)
        positives = history.rows.positives(config.min_rating)
        return fold_in_implicit(network.score_embedded, initial, positives, weights, True, config.l2, bce_loss_of)

    def unweighted_history_weight(self) -> float:
        """Explicit objective: an item of an unrated history counts as rated at the top of the scale."""
        return self._rating_range[1] if self.predicts_ratings else 1.0

    def fallback_rating(self) -> float:
        if not self.predicts_ratings:
            return super().fallback_rating()
        return self._global_mean

    # --- persistence ----------------------------------------------------------------------
    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        state = {name: tensor.cpu().numpy() for name, tensor in self.network.state_dict().items()}
        state["rating_stats"] = np.asarray([self._global_mean, *self._rating_range])
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._global_mean, low, high = (float(value) for value in state.pop("rating_stats"))
        self._rating_range = (low, high)
        table = "user_gmf.weight" if "user_gmf.weight" in state else "user_mlp.weight"
        item_table = table.replace("user", "item")
        config = self.config
        network = NCFNetwork(
            state[table].shape[0],
            state[item_table].shape[0],
            self.kind,
            getattr(config, "n_factors", 1),
            tuple(getattr(config, "layers", ())),
            config.init_std,
        )
        network.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        self._network = network.to(self.options.torch_device()).eval()


class GMF(NCFRecommender):
    """Generalised matrix factorisation (He et al., 2017)."""

    family = "gmf"
    config_type = GMFConfig
    config: GMFConfig
    kind = "gmf"


class MLP(NCFRecommender):
    """Multi-layer perceptron over concatenated user and item embeddings (He et al., 2017)."""

    family = "mlp"
    config_type = MLPConfig
    config: MLPConfig
    kind = "mlp"


class NeuMF(NCFRecommender):
    """Neural matrix factorisation: GMF and MLP fused (He et al., 2017), optionally from pretrained branches."""

    family = "neumf"
    config_type = NeuMFConfig
    config: NeuMFConfig
    kind = "neumf"
