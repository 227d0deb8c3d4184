"""The feature-augmented factorisation network computes scores only; training lives in the model."""

import torch
import torch.nn.functional as F
from torch import nn


class FeatureRows:
    """A sparse (n_rows, n_features) weight matrix as CSR tensors, read a batch of rows at a time."""

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> None:
        self.indptr, self.indices, self.weights = indptr.long(), indices.long(), weights.float()

    @property
    def n_rows(self) -> int:
        return self.indptr.numel() - 1

    def to(self, device: torch.device | str) -> "FeatureRows":
        return FeatureRows(self.indptr.to(device), self.indices.to(device), self.weights.to(device))

    def bags(self, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """sum_f x_rf table_f for each entry of `rows` (any shape), shape rows.shape + (table width,)."""
        flat = rows.reshape(-1)
        start = self.indptr[flat]
        length = self.indptr[flat + 1] - start
        offsets = torch.cumsum(length, 0) - length
        position = torch.repeat_interleave(start - offsets, length) + torch.arange(
            int(length.sum()), device=rows.device
        )
        summed = F.embedding_bag(
            self.indices[position], table, offsets, mode="sum", per_sample_weights=self.weights[position]
        )
        return summed.reshape(*rows.shape, table.shape[1])


class FeatureMFNetwork(nn.Module):
    """s(u, i) = p_u . (q_i + sum_f x_if e_f) + b_i + sum_f x_if c_f (Kula 2015, LightFM).

    `features` holds the items' feature weights x; the id parts q_i and b_i of an item can be
    dropped (`keep_ids` False), which is what a new item has.
    """

    def __init__(
        self,
        n_users: int,
        features: FeatureRows,
        n_features: int,
        n_factors: int,
        init_std: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        n_items = features.n_rows
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.feature_factors = nn.Parameter(torch.empty(n_features, n_factors))
        self.item_bias = nn.Embedding(n_items, 1)
        self.feature_bias = nn.Parameter(torch.zeros(n_features, 1))
        for weight in (self.user_factors.weight, self.item_factors.weight, self.feature_factors):
            nn.init.normal_(weight, std=init_std, generator=generator)
        nn.init.zeros_(self.item_bias.weight)
        self.features = features

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        """Move the feature rows with the parameters (`.to(device)`)."""
        module = super()._apply(fn, recurse)
        self.features = self.features.to(self.user_factors.weight.device)
        return module

    def item_parts(
        self, items: torch.Tensor, keep_ids: torch.Tensor | None = None, features: FeatureRows | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors, biases) of `items`: feature parts, plus id parts where `keep_ids` (default all).
        With `features` given, `items` index its rows and there are no id parts (new items)."""
        rows = features or self.features
        vectors = rows.bags(items, self.feature_factors)
        biases = rows.bags(items, self.feature_bias).squeeze(-1)
        if features is None:
            keep = torch.ones_like(items, dtype=vectors.dtype) if keep_ids is None else keep_ids.to(vectors.dtype)
            vectors = vectors + keep[..., None] * self.item_factors(items)
            biases = biases + keep * self.item_bias(items).squeeze(-1)
        return vectors, biases

    def forward(self, users: torch.Tensor, items: torch.Tensor, keep_ids: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs; `users` (batch,) or (batch, 1) broadcasts against `items`."""
        vectors, biases = self.item_parts(items, keep_ids)
        return (self.user_factors(users) * vectors).sum(dim=-1) + biases

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` for every training item, shape (len(users), n_items)."""
        vectors, biases = self.item_parts(torch.arange(self.features.n_rows, device=users.device))
        return self.user_factors(users) @ vectors.T + biases

    def score_features(self, users: torch.Tensor, features: FeatureRows) -> torch.Tensor:
        """Scores of `users` for items known by their feature rows only, (len(users), n_rows)."""
        vectors, biases = self.item_parts(torch.arange(features.n_rows, device=users.device), features=features)
        return self.user_factors(users) @ vectors.T + biases

    def penalty(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Batch mean of the squared norms of the touched user and item-id embeddings, plus the
        feature embeddings' squared norm over the number of items (one share per item)."""
        norms = (self.user_factors(users) ** 2).sum(-1) + (self.item_factors(positives) ** 2).sum(-1)
        norms = norms + (self.item_factors(negatives) ** 2).sum(-1).mean(-1)
        features = (self.feature_factors**2).sum() / self.item_factors.num_embeddings
        return norms.mean() + features
