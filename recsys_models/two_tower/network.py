"""The two towers compute vectors only; the contrastive training lives in `trainer.py`.

User tower: a user-id embedding plus the mean embedding of the user's recent items (a padded
(batch, history_length) index matrix, padding = n_items). Item tower: an item-id embedding plus
a weighted bag of feature embeddings (genres, tags, year buckets: one row of the TF-IDF feature
matrix per item, kept as flat index/offset/weight buffers). Both towers are L2-normalised; the
logit of (u, i) is cos(u, i) / temperature, plus an optional learned item bias.

For maximum-inner-product search the logit is written as one inner product:
user vector [u / temperature, 1] times item vector [i, b_i] (the last column only with a bias).
"""

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


def user_tower(id_rows: torch.Tensor, history_table: torch.Tensor, history: torch.Tensor, padding: int) -> torch.Tensor:
    """Unit-norm user embeddings: the id rows plus the mean embedding (rows of `history_table`) of
    each row of `history` (batch, L), entries equal to `padding` left out: they add nothing and the
    padding row gets no gradient, as with `nn.Embedding(padding_idx=padding)` (a plain index would
    train that row and let it leak into every history shorter than L)."""
    present = history != padding
    rows = F.embedding(history, history_table, padding_idx=padding) * present.unsqueeze(-1)
    pooled = rows.sum(dim=1) / present.sum(dim=1, keepdim=True).clamp_min(1)
    return F.normalize(id_rows + pooled, dim=-1)


def query_vectors(users: torch.Tensor, temperature: float, item_bias: bool) -> torch.Tensor:
    """[u / temperature (, 1)] of unit-norm user embeddings: the user side of the logit."""
    vectors = users / temperature
    if item_bias:
        vectors = torch.cat([vectors, torch.ones_like(vectors[:, :1])], dim=1)
    return vectors


class TwoTowerNetwork(nn.Module):
    """User and item towers of a dual encoder (Yi et al., 2019; Covington et al., 2016)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dimension: int,
        temperature: float,
        item_bias: bool,
        init_std: float,
        features: sp.csr_matrix | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.temperature = temperature
        self.user_embedding = nn.Embedding(n_users, dimension, sparse=True)  # lazily updated: see the trainer
        self.history_embedding = nn.Embedding(n_items + 1, dimension, padding_idx=n_items)
        self.item_embedding = nn.Embedding(n_items, dimension)
        for table in (self.user_embedding, self.history_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=init_std, generator=generator)
        with torch.no_grad():
            self.history_embedding.weight[n_items].zero_()
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if item_bias else None
        self.feature_embedding: nn.EmbeddingBag | None = None
        if features is not None and features.shape[1] > 0 and features.nnz > 0:
            if features.shape[0] != n_items:
                raise ValueError(f"features have {features.shape[0]} rows, expected {n_items} items")
            features = sp.csr_matrix(features, dtype="float32")
            self.feature_embedding = nn.EmbeddingBag(features.shape[1], dimension, mode="sum")
            nn.init.normal_(self.feature_embedding.weight, std=init_std, generator=generator)
            self.register_buffer("feature_indices", torch.from_numpy(features.indices.astype("int64")))
            self.register_buffer("feature_offsets", torch.from_numpy(features.indptr[:-1].astype("int64")))
            self.register_buffer("feature_weights", torch.from_numpy(features.data.copy()))

    def user_tower(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Unit-norm user embeddings, (batch, dimension); `history` is (batch, L) with padding n_items."""
        return user_tower(self.user_embedding(users), self.history_embedding.weight, history, self.n_items)

    def item_tower(self) -> torch.Tensor:
        """Unit-norm embeddings of every item, (n_items, dimension)."""
        items = self.item_embedding.weight
        if self.feature_embedding is not None:
            items = items + self.feature_embedding(
                self.feature_indices, self.feature_offsets, per_sample_weights=self.feature_weights
            )
        return F.normalize(items, dim=-1)

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """[u / temperature (, 1)]: the user side of the logit as an inner product."""
        return query_vectors(self.user_tower(users, history), self.temperature, self.item_bias is not None)

    def item_vectors(self) -> torch.Tensor:
        """[i (, b_i)] for every item: the item side of the logit, what the ANN index holds."""
        vectors = self.item_tower()
        if self.item_bias is not None:
            vectors = torch.cat([vectors, self.item_bias[:, None]], dim=1)
        return vectors
