"""Feature-augmented factorisation (hybrid_features): an item's representation is its id
embedding plus the weighted sum of the embeddings of its features (genres, tags, release-year
buckets), as in LightFM (Kula 2015, "Metadata Embeddings for User and Item Cold-start
Recommendations"), trained with the BPR criterion (Rendle et al. 2009) on implicit feedback.

Feature weights are the item's unit-length TF-IDF row (catalogue IDF, `features.tfidf`), so a
new item gets a usable vector and bias from its features alone (`score_new_items`). To make that
vector carry the signal rather than leave it all to the id embedding, each training occurrence of
an item drops its id parts with probability `id_dropout` (as DropoutNet does, Volkovs et al.
2017). Mini-batches of positive pairs with `n_negatives` popularity-sampled negatives, Adam, L2
on the touched rows; early stopping on validation NDCG@10, then a refit on train + valid for the
best epoch count (as bpr_mf).

Defaults: the optimiser, sampling and regularisation settings are bpr_mf's validated ones (its
module docstring); 64 factors; genres, tags and years as features (title words are mostly
one-item noise for a factor model); id dropout 0.3. These were not searched further for this
family (time). Test NDCG@10 (benchmarks/results/cold_start_quality.json, seed 42): warm, P4,
0.084 on ml-latest-small and 0.151 on ml-100k (bpr_mf 0.083 / 0.161, EASE 0.120 / 0.183); on
the P4 cold-item slice 0.035 [0.017, 0.057] over 126 users on ml-latest-small (content_tfidf
0.013, random order 0.005) and 0.164 over 14 users on ml-100k (content_tfidf 0.122, random 0.067).
"""

import functools
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.features import ItemFeatures, idf_weights, tfidf
from recsys_models.fold_in import bpr_loss_of, fold_in_implicit
from recsys_models.history import HistoryBatch
from recsys_models.hybrid.feature_mf.network import FeatureMFNetwork, FeatureRows
from recsys_models.interactions import Interactions
from recsys_models.losses import bpr_loss
from recsys_models.sampling import NegativeSampler, popularity_weights
from recsys_models.training import EarlyStopping, TorchTrainingConfig, run_epochs, seeded_generator, training_default
from recsys_models.tuning import FloatRange, IntRange, SearchSpace
from recsys_models.validation_metrics import validation_ndcg
from recsys_models.warm_start import trained_parameters

FeatureKind = Literal["genre", "tag", "title", "year"]


class HybridFeaturesConfig(TorchTrainingConfig):
    """Hyperparameters of the feature-augmented factorisation; see the module docstring for the defaults.
    A mini-batch holds positive pairs."""

    search_space: ClassVar[SearchSpace] = {
        "n_factors": IntRange(16, 256, log=True),
        "learning_rate": FloatRange(1e-3, 2e-2, log=True),
        "l2": FloatRange(1e-4, 1e-1, log=True),
        "id_dropout": FloatRange(0.0, 0.7),
        "n_negatives": IntRange(1, 10),
    }

    n_factors: PositiveInt = Field(default=64, description="Latent dimensions of users, item ids and features.")
    feature_kinds: tuple[FeatureKind, ...] = Field(
        default=("genre", "tag", "year"), description="Which kinds of item features get embeddings."
    )
    epochs: PositiveInt = training_default("epochs", 60)
    l2: NonNegativeFloat = Field(default=0.01, description="L2 weight on the squared norms of a batch's rows.")
    n_negatives: PositiveInt = Field(default=5, description="Negatives drawn per positive pair.")
    popularity_alpha: NonNegativeFloat = Field(
        default=0.5, description="Negatives drawn in proportion to count ** alpha (0: uniform)."
    )
    id_dropout: float = Field(
        default=0.3, ge=0.0, lt=1.0, description="Chance that a training occurrence of an item drops its id parts."
    )
    min_rating: float | None = Field(
        default=None, description="Ratings at or above this value are positives; None makes every interaction one."
    )
    init_std: PositiveFloat = Field(default=0.01, description="Standard deviation of the initial embeddings.")


def _rows(matrix: sp.csr_matrix, device: str | torch.device) -> FeatureRows:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    return FeatureRows(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data),
    ).to(device)


class HybridFeatures(Recommender):
    """BPR factorisation whose items are id + feature embeddings; scores new items from features."""

    family = "hybrid_features"
    config_type = HybridFeaturesConfig
    config: HybridFeaturesConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True
    needs_item_features = True
    scores_new_items = True

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        if not isinstance(item_features, ItemFeatures) or item_features.n_features == 0:
            raise ValueError(f"{self.family} needs item features (an items table with genres, tags or years)")
        keep = np.flatnonzero(np.isin(item_features.kinds(), self.config.feature_kinds))
        if keep.size == 0:
            raise ValueError(f"{self.family}: the items have no feature of the kinds {self.config.feature_kinds}")
        self._names = item_features.names[keep].astype(str)
        self._idf = idf_weights(item_features.matrix[:, keep])
        self._weights = tfidf(item_features.aligned(train.items)[:, keep], idf=self._idf)
        min_rating = self.config.min_rating
        relevant = valid.positives(min_rating) if valid is not None else None
        validation = (relevant, train.tocsr(values="binary")) if relevant is not None and relevant.nnz else None
        positives = train.positives(min_rating)
        self._network, self.history, best_epoch = self._train(positives, self.config.epochs, validation)
        if validation is not None and valid is not None and self.config.refit_on_full:
            self._network, refit, _ = self._train(train.concat(valid).positives(min_rating), best_epoch, None)
            self.history += [{"epoch": r["epoch"], "refit_train_loss": r["train_loss"]} for r in refit]

    def _train(
        self, positives: sp.csr_matrix, epochs: int, validation: tuple[sp.csr_matrix, sp.csr_matrix] | None
    ) -> tuple[FeatureMFNetwork, list[dict[str, float]], int]:
        """Train a fresh network; with `validation` (relevant, excluded), stop early on NDCG@10."""
        if positives.nnz == 0:
            threshold = self.config.min_rating
            raise ValueError(f"{self.family}: no positive interactions to train on (min_rating={threshold})")
        config, device = self.config, self.options.torch_device()
        generator = seeded_generator(self.options.seed)
        sample_generator = torch.Generator(device=device)
        sample_generator.manual_seed(self.options.seed)
        network = FeatureMFNetwork(
            positives.shape[0],
            _rows(self._weights, "cpu"),
            self._idf.size,
            config.n_factors,
            config.init_std,
            generator,
        ).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        weights = popularity_weights(np.diff(positives.tocsc().indptr), config.popularity_alpha)
        sampler = NegativeSampler(positives.shape[1], weights if weights.sum() > 0 else None, positives, device)
        pairs = positives.tocoo()
        users = torch.from_numpy(pairs.row.astype(np.int64)).to(device)
        items = torch.from_numpy(pairs.col.astype(np.int64)).to(device)
        usable = sampler.has_negatives(users)
        users, items = users[usable], items[usable]
        if users.numel() == 0:
            raise ValueError(f"{self.family}: no user has an item left to draw as a negative")
        stopper = EarlyStopping(patience=config.patience, lower_is_better=False) if validation else None

        def train_epoch(epoch: int) -> dict[str, float]:
            order = torch.randperm(users.numel(), generator=generator).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, users.numel(), config.batch_size):
                batch = order[start : start + config.batch_size]
                u, i = users[batch], items[batch]
                j = sampler.sample(u, config.n_negatives, sample_generator)
                keep_i = torch.rand(i.shape, generator=sample_generator, device=device) >= config.id_dropout
                keep_j = torch.rand(j.shape, generator=sample_generator, device=device) >= config.id_dropout
                loss = bpr_loss(network(u, i, keep_i), network(u[:, None], j, keep_j))
                loss = loss + config.l2 * network.penalty(u, i, j)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * batch.numel()
            return {"train_loss": float(total) / users.numel()}

        def validate(relevant: sp.csr_matrix, excluded: sp.csr_matrix) -> float:
            return validation_ndcg(lambda batch_users: network.score_all(batch_users.to(device)), relevant, excluded)

        validate_epoch = functools.partial(validate, *validation) if validation else None
        history, best_epoch = run_epochs(self.family, network, epochs, train_epoch, validate_epoch, stopper)
        return network.eval(), history, best_epoch

    @torch.no_grad()
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.array(self._check_users(user_indices)))
        device = next(self._network.parameters()).device
        return self._network.score_all(users.to(device)).cpu().numpy()

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Fold-in as bpr_mf's (`fold_in`): the user vector minimising the BPR loss and its L2 term
        for the history's positives, items (id + feature parts, no id dropout, as in scoring) fixed,
        negatives in expectation over the popularity sampling. Close to a trained user's scores."""
        config, network = self.config, self._network
        with torch.no_grad():
            vectors, biases = network.item_parts(torch.arange(self.n_items, device=network.user_factors.weight.device))
        weights = popularity_weights(np.diff(self.seen.tocsc().indptr), config.popularity_alpha)
        return fold_in_implicit(
            lambda users: users @ vectors.T + biases,
            network.user_factors.weight.detach().mean(0),
            history.rows.positives(config.min_rating),
            weights if weights.sum() > 0 else None,
            True,
            config.l2,
            bpr_loss_of,
        )

    @torch.no_grad()
    def score_new_items(self, user_indices: np.ndarray, new_items: ItemFeatures) -> np.ndarray:
        users = torch.from_numpy(np.array(self._check_users(user_indices)))
        device = next(self._network.parameters()).device
        features = _rows(tfidf(new_items.in_columns(self._names), idf=self._idf), device)
        return self._network.score_features(users.to(device), features).cpu().numpy()

    def trained_parameters(self) -> dict[str, torch.Tensor] | None:
        return trained_parameters(self._network)

    def _state(self) -> dict[str, np.ndarray]:
        network = {f"network.{name}": tensor.cpu().numpy() for name, tensor in self._network.state_dict().items()}
        weights = self._weights
        return network | {
            "names": self._names,
            "idf": self._idf,
            "weights_indptr": weights.indptr,
            "weights_indices": weights.indices,
            "weights_data": weights.data,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._names, self._idf = state["names"].astype(str), state["idf"]
        n_items = state["network.item_factors.weight"].shape[0]
        self._weights = sp.csr_matrix(
            (state["weights_data"], state["weights_indices"], state["weights_indptr"]), shape=(n_items, self._idf.size)
        )
        n_users, n_factors = state["network.user_factors.weight"].shape
        rows = _rows(self._weights, "cpu")
        network = FeatureMFNetwork(n_users, rows, self._idf.size, n_factors, self.config.init_std)
        network.load_state_dict(
            {
                name.removeprefix("network."): torch.from_numpy(array)
                for name, array in state.items()
                if name.startswith("network.")
            }
        )
        self._network = network.to(self.options.torch_device()).eval()
