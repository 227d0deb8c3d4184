"""Biased MF: explicit-rating regression with mini-batch Adam, L2, and early stopping on validation RMSE.

An epoch takes at most `max_batches_per_epoch` fused Adam steps: larger data get larger batches,
while the MovieLens sets (under 200k ratings) keep batch 1024.
"""

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.biased_mf.network import BiasedMFNetwork
from recsys_models.fold_in import ridge_rows
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.training import (
    EarlyStopping,
    TorchTrainingConfig,
    run_epochs,
    seeded_generator,
    shuffled_batches,
    training_default,
)
from recsys_models.tuning import FloatRange, IntRange, SearchSpace
from recsys_models.warm_start import trained_parameters

if TYPE_CHECKING:
    from recsys_models.biased_mf.mf import MFConfig


class BiasedMFConfig(TorchTrainingConfig):
    """Hyperparameters of biased MF; defaults chosen on the validation tail of ml-latest-small (README).
    A mini-batch holds ratings (batch_size at least: see max_batches_per_epoch)."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(8, 256, log=True),
        "learning_rate": FloatRange(1e-4, 5e-2, log=True),
        "factor_l2": FloatRange(1e-3, 1.0, log=True),
        "bias_l2": FloatRange(1e-5, 0.1, log=True),
    }

    n_factors: PositiveInt = Field(default=64, description="Latent dimensions.")
    max_batches_per_epoch: PositiveInt = Field(
        default=200,
        description="Most optimizer steps per epoch: larger data get larger batches, ceil(ratings / this).",
    )
    factor_l2: NonNegativeFloat = Field(default=0.1, description="L2 weight on the factors of a batch.")
    bias_l2: NonNegativeFloat = Field(default=0.001, description="L2 weight on the biases of a batch.")
    init_std: PositiveFloat = Field(default=0.05, description="Standard deviation of the initial factors.")
    patience: PositiveInt = training_default("patience", 3)


class BiasedMF(Recommender):
    """Global mean + user and item biases + dot product of latent factors (Koren et al., 2009)."""

    family = "biased_mf"
    needs_ratings = True
    config_type: ClassVar[type[BaseModel]] = BiasedMFConfig
    config: "BiasedMFConfig | MFConfig"  # MF (biased_mf/mf.py) is a BiasedMF without biases
    predicts_ratings = True
    uses_validation = True
    use_biases: ClassVar[bool] = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        self._network, self.history = self._train(train, valid, self.config.epochs)
        if valid is not None and len(valid) and self.config.refit_on_full:
            self._network, refit_history = self._train(train.concat(valid), None, self._best_epoch)
            self.history += [{"epoch": r["epoch"], "refit_train_loss": r["train_loss"]} for r in refit_history]
        self._rating_range = (float(train.rating.min()), float(train.rating.max()))

    def _train(
        self, train: Interactions, valid: Interactions | None, epochs: int
    ) -> tuple[BiasedMFNetwork, list[dict[str, float]]]:
        """Train a fresh network; with `valid`, stop early and keep the best epoch's weights."""
        config, device = self.config, self.options.torch_device()
        generator = seeded_generator(self.options.seed)  # initialisation, then shuffling
        network = BiasedMFNetwork(
            train.n_users,
            train.n_items,
            config.n_factors,
            float(train.rating.mean()),
            config.init_std,
            use_biases=self.use_biases,
            generator=generator,
        ).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, fused=True)  # one pass per step
        users = torch.from_numpy(train.user_idx).to(device)
        items = torch.from_numpy(train.item_idx).to(device)
        ratings = torch.from_numpy(train.rating).to(device)
        batch_size = max(config.batch_size, -(-len(train) // config.max_batches_per_epoch))

        def train_epoch(epoch: int) -> dict[str, float]:
            total = torch.zeros((), device=device)
            for batch in shuffled_batches(len(train), batch_size, generator, device):
                u, i = users[batch], items[batch]
                error = network(u, i) - ratings[batch]
                loss = (error**2).mean() + self._penalty(network, u, i)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            return {"train_loss": float(total) / len(train)}

        validate, stopper = None, None
        if valid is not None and len(valid):
            validate, stopper = partial(self._rmse, network, valid, device), EarlyStopping(patience=config.patience)
        history, self._best_epoch = run_epochs(
            self.family, network, epochs, train_epoch, validate, stopper, metric="valid_rmse"
        )
        return network.eval(), history

    def _penalty(self, network: BiasedMFNetwork, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The L2 term of a batch's loss."""
        factor_penalty, bias_penalty = network.penalty(users, items)
        config = self.config
        assert isinstance(config, BiasedMFConfig)  # MF, whose config has no bias_l2, overrides this
        return config.factor_l2 * factor_penalty + config.bias_l2 * bias_penalty

    @staticmethod
    @torch.no_grad()
    def _rmse(network: BiasedMFNetwork, data: Interactions, device: str) -> float:
        network.eval()
        predicted = network(torch.from_numpy(data.user_idx).to(device), torch.from_numpy(data.item_idx).to(device))
        return float(torch.sqrt(((predicted - torch.from_numpy(data.rating).to(device)) ** 2).mean()))

    @torch.no_grad()
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.as_tensor(np.array(self._check_users(user_indices)))
        device = next(self._network.parameters()).device
        return self._network.score_all(users.to(device)).cpu().numpy()

    @torch.no_grad()
    def predict(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        """Predicted ratings, clipped to the training rating range."""
        users = torch.as_tensor(np.array(self._check_users(user_indices)))
        items = torch.as_tensor(np.array(item_indices, dtype=np.int64))
        device = next(self._network.parameters()).device
        predicted = self._network(users.to(device), items.to(device)).cpu().numpy()
        return np.clip(predicted, *self._rating_range)

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Fold-in in closed form: the user factors (and bias) minimising the training loss, squared
        error plus its per-pair L2 terms, with every item parameter fixed: a ridge regression on
        the history's ratings (`fold_in.ridge_rows`). A trained user's vector, which Adam only
        approaches in its epochs, is close to it."""
        network, config, rows = self._network, self.config, history.rows
        items = network.item_factors.weight.detach().cpu().numpy().astype(np.float64)
        penalty = np.full(items.shape[1], config.factor_l2)
        features, targets = items, rows.rating.astype(np.float64)
        if self.use_biases:
            assert isinstance(config, BiasedMFConfig)  # MF has no biases
            mean, item_bias = float(network.global_mean), network.item_bias.weight.detach().cpu().numpy()[:, 0]
            features = np.hstack([items, np.ones((items.shape[0], 1))])
            targets = targets - mean - item_bias[rows.item_idx]
            penalty = np.append(penalty, config.bias_l2)
        solution = ridge_rows(history, features, targets, penalty)
        scores = solution[:, : items.shape[1]] @ items.T
        if self.use_biases:
            scores += mean + solution[:, -1:] + item_bias[None, :]
        return scores.astype(np.float32)

    def unweighted_history_weight(self) -> float:
        """An item of an unrated history counts as rated at the top of the training scale (liked)."""
        return self._rating_range[1]

    def fallback_rating(self) -> float:
        return float(self._network.global_mean)

    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        state = {name: tensor.cpu().numpy() for name, tensor in self._network.state_dict().items()}
        state["rating_range"] = np.asarray(self._rating_range)
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        n_users, n_factors = state["user_factors.weight"].shape
        n_items = state["item_factors.weight"].shape[0]
        low, high = state.pop("rating_range")
        self._rating_range = (float(low), float(high))
        self._network = BiasedMFNetwork(
            n_users, n_items, n_factors, float(state["global_mean"]), self.config.init_std, use_biases=self.use_biases
        )
        self._network.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        self._network.to(self.options.torch_device()).eval()
