"""Two-tower retrieval: a dual encoder trained contrastively, served from an ANN index.

User tower: user id + mean embedding of the user's recent items; item tower: item id + genre,
tag and year-bucket features (TF-IDF weighted; ids alone when the source has no item table).
Training: in-batch softmax with temperature and the log-frequency (logQ) correction of Yi et
al. (2019), optional uniform extra negatives (Yang et al., 2020); AdamW, except for the user id
table, which lazy Adam updates only in the rows of a batch's users (`trainer.tower_optimizers`);
early stopping on validation NDCG@10 (exact scores), then a refit on train + valid for the best
epoch count.

After fitting, the model keeps the user vectors (from each user's latest history) and the item
vectors, and builds an ANN index over the items (`AnnConfig`, HNSW by default). `recommend`
serves from the index: it asks for k + the user's history length (rounded up to a power of two,
one search per group), drops seen items, and falls back to exact search for a user whose list
came back short. `recommend(..., exact=True)` (or
`exact_search = True` on the model) is brute force over `score`, the reference the index is
checked against. `similar_items` answers item-to-item queries from the same index.

Defaults (`--validation` of benchmarks/two_tower_quality.py: the protocol re-applied to the
training part, test never seen; NDCG@10 on that inner test, seed 42):

    NDCG@10 (ANN-served; exact search gives the same to 4 decimals)   P4 ml-100k (911 users)
    temperature 0.05                                                      0.173
    temperature 0.1                                                       0.168
    temperature 0.1, item bias                                            0.167
    temperature 0.2                                                       0.196   <- default
    temperature 0.5                                                       0.177
    (EASE on the same inner split, its docstring: 0.164; bpr_mf: 0.145)

One standard error is about 0.007. On ml-latest-small P4 (validation) temperature 0.2 gives
0.119 (EASE 0.128, bpr_mf 0.097 by their docstrings); the other temperatures were not run there
for lack of time. Lower temperatures stop within 2-4 epochs (the towers memorise the
training pairs: on clustered synthetic data 0.1 retrieves the own cluster for 76% of slots, 0.5
for 100%). Dimension 64, 20 history items, batch 1024, learning rate 0.005 and the feature kinds
were not searched. The search ran with a dense AdamW step on the user table; the lazy step that
replaced it (an epoch on 10M ratings: see README, "Scale") moved test NDCG@10 by less than one
standard error: ml-latest-small P2 0.101 -> 0.107, P4 0.104 -> 0.100; ml-100k P2 0.136 -> 0.133,
P4 0.187 -> 0.181 (benchmarks/two_tower_quality.py, seed 42).
"""

import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from recsys_models.base import Recommender
from recsys_models.features import ItemFeatures, tfidf
from recsys_models.history import HistoryBatch
from recsys_models.interactions import Interactions
from recsys_models.io import atomic_write_json
from recsys_models.options import TrainingOptions
from recsys_models.sequential.sequences import Sequences, recent_items
from recsys_models.training import TorchTrainingConfig, training_default
from recsys_models.tuning import Choice, FloatRange, IntRange, SearchSpace
from recsys_models.two_tower.ann import AnnConfig, VectorIndex, recall_at_k
from recsys_models.two_tower.network import query_vectors, user_tower
from recsys_models.two_tower.trainer import TrainerSettings, train_towers, training_data

INDEX_FILE = "items.faiss"
INDEX_REPORT_FILE = "index_report.json"  # build time, size, recall@100 vs exact: logged with the model
REPORT_USERS = 1000
USER_TOWER = ("user_embedding", "history_embedding")  # the network's tables a history is scored with
FeatureKind = Literal["genre", "tag", "title", "year"]


class TwoTowerConfig(TorchTrainingConfig):
    """Hyperparameters of the two-tower model; defaults from the validation search in the module docstring.
    A batch holds positive pairs (batch_size = in-batch negatives + 1); learning_rate is Adam's on every table."""

    search_space: ClassVar[SearchSpace] = {
        "dimension": Choice((32, 64, 128)),
        "history_length": IntRange(5, 100, log=True),
        "temperature": FloatRange(0.05, 1.0, log=True),
        "learning_rate": FloatRange(5e-4, 2e-2, log=True),
    }

    dimension: PositiveInt = Field(default=64, description="Embedding dimension of both towers.")
    history_length: PositiveInt = Field(default=20, description="Recent items pooled into the user tower.")
    feature_kinds: tuple[FeatureKind, ...] = Field(
        default=("genre", "tag", "year"), description="Item feature kinds the item tower embeds."
    )
    temperature: PositiveFloat = Field(default=0.2, description="Softmax temperature of the cosine logits.")
    item_bias: bool = Field(default=False, description="Add a learned per-item bias to the logit.")
    logq_correction: bool = Field(default=True, description="Subtract log(expected draws) from each candidate.")
    n_random_negatives: NonNegativeInt = Field(
        default=0, description="Uniformly drawn extra negatives shared by a batch (0: in-batch only)."
    )
    epochs: PositiveInt = training_default("epochs", 60)
    weight_decay: NonNegativeFloat = Field(
        default=0.0, description="AdamW decoupled weight decay (not on the lazily updated user id table)."
    )
    init_std: PositiveFloat = Field(default=0.05, description="Standard deviation of the initial embeddings.")
    min_rating: float | None = Field(
        default=None, description="Ratings at or above this value are positives; None makes every interaction one."
    )
    ann: AnnConfig = Field(default_factory=AnnConfig, description="The index recommendations are served from.")


class TwoTower(Recommender):
    """Dual-encoder retrieval with an ANN index over the item tower; ranks, does not rate."""

    family = "two_tower"
    config_type = TwoTowerConfig
    config: TwoTowerConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        self.exact_search = False  # True: recommend by brute force instead of the index
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None
        self._user_tower: dict[str, np.ndarray] = {}  # the user tower's tables, for `score_history`
        self._index: VectorIndex | None = None
        self.index_report: dict[str, float] = {}

    # --- training -------------------------------------------------------------------------
    def _settings(self) -> TrainerSettings:
        c = self.config
        return TrainerSettings(
            self.family,
            c.dimension,
            c.temperature,
            c.item_bias,
            c.init_std,
            c.batch_size,
            c.n_random_negatives,
            c.logq_correction,
            c.learning_rate,
            c.weight_decay,
            c.patience,
        )

    def _features(self, item_features: ItemFeatures | None, train: Interactions) -> sp.csr_matrix | None:
        """TF-IDF rows of the chosen feature kinds, in the model's item order; None without features."""
        if item_features is None or not self.config.feature_kinds:
            return None
        chosen = np.flatnonzero(np.isin(item_features.kinds(), self.config.feature_kinds))
        matrix = sp.csr_matrix(item_features.aligned(train.items)[:, chosen])
        return tfidf(matrix) if matrix.nnz else None

    def _pairs(self, data: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = np.ones(len(data), dtype=bool)
        if self.config.min_rating is not None:
            keep = data.rating >= self.config.min_rating
        return data.user_idx[keep], data.item_idx[keep], data.timestamp[keep]

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config, device = self.config, self.options.torch_device()
        features = self._features(item_features, train)
        settings = self._settings()
        n_users, n_items = train.n_users, train.n_items
        data = training_data(*self._pairs(train), n_users, n_items, config.history_length, device)
        validation = None
        if valid is not None and len(valid):
            relevant = valid.tocsr("binary")
            if relevant.nnz:
                validation = (relevant, train.tocsr("binary"))
        network, self.history, best_epoch = train_towers(
            data, n_users, n_items, features, settings, config.epochs, self.options.seed, device, validation
        )
        full = train if valid is None else train.concat(valid)
        full_data = training_data(*self._pairs(full), n_users, n_items, config.history_length, device)
        if validation is not None and config.refit_on_full:
            network, refit, _ = train_towers(
                full_data, n_users, n_items, features, settings, best_epoch, self.options.seed, device
            )
            self.history += [{"epoch": r["epoch"], "refit_train_loss": r["train_loss"]} for r in refit]
        with torch.no_grad():
            users = torch.arange(n_users, device=device)
            self._user_vectors = network.query_vectors(users, full_data.user_history).cpu().numpy()
            self._item_vectors = network.item_vectors().cpu().numpy()
        self._user_tower = {name: getattr(network, name).weight.detach().cpu().numpy() for name in USER_TOWER}
        started = time.perf_counter()
        self._index = VectorIndex.build(self._item_vectors, config.ann)
        self.index_report = self._index_report(time.perf_counter() - started)

    def _index_report(self, build_seconds: float) -> dict[str, float]:
        """Build time, size and recall@100 against exact search on up to REPORT_USERS users (seeded)."""
        rng = np.random.default_rng(self.options.seed)
        users = rng.choice(len(self.users), min(REPORT_USERS, len(self.users)), replace=False)
        k = min(100, self.n_items)
        queries = self.user_vectors[users]
        served, _ = self.index.search(queries, k)
        exact = np.argsort(-(queries @ self.item_vectors.T), axis=1, kind="stable")[:, :k]
        return {
            "index_build_seconds": round(build_seconds, 3),
            "index_mb": round(self.index.memory_bytes() / 2**20, 3),
            f"index_recall_at_{k}": round(recall_at_k(served, exact), 4),
            "index_report_users": int(users.size),
        }

    # --- scoring --------------------------------------------------------------------------
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Exact logits of every item (brute force): what the index is checked against."""
        users = self._check_users(user_indices)
        return self.user_vectors[users] @ self.item_vectors.T

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """Exact logits from the user tower run on the history: the mean embedding of its last
        `history_length` items (by time; those at or above `min_rating`) plus the user's id
        embedding where the row names a known user (none for anyone else). Exact for a known
        user; brute force (the index serves trained users only)."""
        if not self._user_tower:
            raise ValueError(
                f"{self.family}: this model was saved without its user tower; retrain it to score histories"
            )
        config, n_items = self.config, self.n_items
        users, items, timestamps = self._pairs(history.rows)
        order = np.lexsort((items, timestamps, users))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=len(history)))])
        recent = recent_items(Sequences(indptr, items[order].astype(np.int64)), config.history_length) - 1
        recent = np.where(recent < 0, n_items, recent)  # the padding row of the history table
        own = torch.from_numpy(history.users)
        id_rows = torch.from_numpy(self._user_tower["user_embedding"])[own.clamp_min(0)] * (own >= 0)[:, None]
        table = torch.from_numpy(self._user_tower["history_embedding"])
        user_vectors = user_tower(id_rows, table, torch.from_numpy(recent), n_items)
        return query_vectors(user_vectors, config.temperature, config.item_bias).numpy() @ self.item_vectors.T

    def recommend(
        self, user_indices: np.ndarray, k: int = 10, exclude_seen: bool = True, exact: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k from the ANN index (seen items dropped); `exact` (default: `exact_search`) searches by brute force."""
        users = self._check_users(user_indices)
        if self.exact_search if exact is None else exact:
            return super().recommend(users, k, exclude_seen)
        k = min(k, self.n_items)
        seen = self.seen[users] if exclude_seen else sp.csr_matrix((users.size, self.n_items))
        n_seen = np.diff(seen.indptr)
        # depth k + history, rounded up to a power of two: one search per group of similar users
        depth = np.minimum(2 ** np.ceil(np.log2(k + n_seen)).astype(np.int64), self.n_items)
        top_ids = np.empty((users.size, k), dtype=np.int64)
        top_scores = np.empty((users.size, k), dtype=np.float32)
        for group_depth in np.unique(depth):
            group = np.flatnonzero(depth == group_depth)
            top_ids[group], top_scores[group] = self._search_unseen(users[group], seen[group], k, int(group_depth))
        short = np.flatnonzero(np.isneginf(top_scores).any(axis=1))
        if short.size:  # the index found too few unseen items for these users: search them exactly
            top_ids[short], top_scores[short] = super().recommend(users[short], k, exclude_seen)
        return top_ids, top_scores

    def _search_unseen(
        self, users: np.ndarray, seen: sp.csr_matrix, k: int, depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The index's top-`depth` per user with seen items dropped, cut to k (-inf marks a short list)."""
        ids, scores = self.index.search(self.user_vectors[users], depth)
        rows = np.arange(users.size, dtype=np.int64)
        seen_keys = np.repeat(rows, np.diff(seen.indptr)) * self.n_items + seen.indices
        blocked = np.isin(rows[:, None] * self.n_items + ids, seen_keys) | (ids < 0)
        scores = np.where(blocked, -np.inf, scores)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)

    def similar_items(self, item_indices: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k items whose item-tower embeddings are closest (cosine) to each given item, itself excluded."""
        items = np.asarray(item_indices, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"{self.family}: item indices must lie in [0, {self.n_items}); map raw ids first")
        k = min(k, self.n_items - 1)
        queries = self.item_vectors[items].copy()
        if self.config.item_bias:
            queries[:, -1] = 0.0  # bias column off: the inner product is the cosine of the embeddings
        ids, scores = self.index.search(queries, k + 1)
        scores = np.where(ids == items[:, None], -np.inf, scores)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)

    # --- state ----------------------------------------------------------------------------
    @property
    def user_vectors(self) -> np.ndarray:
        return self._require(self._user_vectors)

    @property
    def item_vectors(self) -> np.ndarray:
        return self._require(self._item_vectors)

    @property
    def index(self) -> VectorIndex:
        return self._require(self._index)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_vectors": self.user_vectors, "item_vectors": self.item_vectors, **self._user_tower}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._user_vectors = state["user_vectors"].astype(np.float32)
        self._item_vectors = state["item_vectors"].astype(np.float32)
        self._user_tower = {name: state[name] for name in USER_TOWER if name in state}  # absent before issue 20

    def save(self, directory: Path) -> None:
        """Config, vectors and vocabularies as for every family, plus the faiss index file beside them."""
        super().save(directory)
        self.index.save(directory / INDEX_FILE)
        atomic_write_json(directory / INDEX_REPORT_FILE, self.index_report)

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = super().load(directory)
        model._index = VectorIndex.load(directory / INDEX_FILE, model.config.ann)
        model.index_report = json.loads((directory / INDEX_REPORT_FILE).read_text())
        return model
