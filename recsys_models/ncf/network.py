"""The NCF networks (He et al., 2017) compute scores only; the trainer lives in `ncf.model`.

One module covers the three variants: `gmf` (element-wise product of user and item embeddings,
then a linear output), `mlp` (a ReLU tower over the concatenated embeddings) and `neumf` (both
branches, with their own embeddings, fused by one output layer over their concatenated last
layers). The tower's first layer over [p_u, q_i] is held as two linear maps (W [p; q] =
W_u p + W_i q), which is the same function but lets `score_all` compute the user and item halves
once instead of once per pair.
"""

from typing import Literal

import torch
from torch import nn

Kind = Literal["gmf", "mlp", "neumf"]
SCORE_PAIRS = 1 << 20


class NCFNetwork(nn.Module):
    """Logit (implicit) or predicted rating (explicit) of (user, item) pairs."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        kind: Kind,
        n_factors: int,
        layers: tuple[int, ...],
        init_std: float,
        output_bias: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.uses_gmf, self.uses_mlp = kind in ("gmf", "neumf"), kind in ("mlp", "neumf")
        width = 0
        if self.uses_gmf:
            self.user_gmf = _embedding(n_users, n_factors, init_std, generator)
            self.item_gmf = _embedding(n_items, n_factors, init_std, generator)
            width += n_factors
        if self.uses_mlp:
            if len(layers) < 2 or layers[0] % 2:
                raise ValueError(f"layers must hold an even input width and at least one hidden width, got {layers}")
            self.user_mlp = _embedding(n_users, layers[0] // 2, init_std, generator)
            self.item_mlp = _embedding(n_items, layers[0] // 2, init_std, generator)
            self.first_user = nn.Linear(layers[0] // 2, layers[1])
            self.first_item = nn.Linear(layers[0] // 2, layers[1], bias=False)
            tower: list[nn.Module] = [nn.ReLU()]
            for width_in, width_out in zip(layers[1:-1], layers[2:], strict=True):
                tower += [nn.Linear(width_in, width_out), nn.ReLU()]
            self.tower = nn.Sequential(*tower)
            for module in (self.first_user, self.first_item, *self.tower):
                if isinstance(module, nn.Linear):
                    _xavier(module, generator)
            width += layers[-1]
        self.output = nn.Linear(width, 1)
        _xavier(self.output, generator)
        nn.init.constant_(self.output.bias, output_bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs; `users` (batch,) or (batch, 1) broadcasts against `items`."""
        shape = torch.broadcast_shapes(users.shape, items.shape)
        parts = []
        if self.uses_gmf:
            parts.append(self.user_gmf(users).expand(*shape, -1) * self.item_gmf(items).expand(*shape, -1))
        if self.uses_mlp:
            hidden = self.first_user(self.user_mlp(users)) + self.first_item(self.item_mlp(items))
            parts.append(self.tower(hidden.expand(*shape, -1)))
        return self.output(torch.cat(parts, dim=-1)).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` for every item, shape (len(users), n_items), in chunks of items.

        A chunk holds about `SCORE_PAIRS` (user, item) pairs, which bounds the tower's memory.
        """
        return self.score_embedded(self.user_rows(users))

    def user_rows(self, users: torch.Tensor) -> torch.Tensor:
        """The users' embedding rows, GMF's then MLP's, side by side: all a user is to the network."""
        rows = ([self.user_gmf(users)] if self.uses_gmf else []) + ([self.user_mlp(users)] if self.uses_mlp else [])
        return torch.cat(rows, dim=-1)

    def score_embedded(self, user_rows: torch.Tensor) -> torch.Tensor:
        """Scores of users given by their embedding rows (`user_rows`) for every item, (n_users, n_items)."""
        n_users, device = user_rows.shape[0], user_rows.device
        n_items = (self.item_gmf if self.uses_gmf else self.item_mlp).num_embeddings
        item_chunk = max(1, SCORE_PAIRS // max(1, n_users))
        weight, bias = self.output.weight.squeeze(0), self.output.bias
        gmf_width = self.user_gmf.embedding_dim if self.uses_gmf else 0
        chunks = []
        user_gmf = user_rows[:, :gmf_width] * weight[:gmf_width] if self.uses_gmf else None
        user_hidden = self.first_user(user_rows[:, gmf_width:])[:, None, :] if self.uses_mlp else None
        for start in range(0, n_items, item_chunk):
            items = torch.arange(start, min(start + item_chunk, n_items), device=device)
            scores = bias.expand(n_users, items.numel())
            if user_gmf is not None:
                scores = scores + user_gmf @ self.item_gmf(items).T
            if user_hidden is not None:
                hidden = self.tower(user_hidden + self.first_item(self.item_mlp(items))[None, :, :])
                scores = scores + hidden @ weight[gmf_width:]
            chunks.append(scores)
        return torch.cat(chunks, dim=1)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Batch mean of the squared norms of the embedding rows that `users` and `items` touch."""
        total = torch.zeros((), device=users.device)
        for table, index in self._embeddings(users, items):
            total = total + (table(index) ** 2).sum(-1).mean()
        return total

    def _embeddings(self, users: torch.Tensor, items: torch.Tensor) -> list[tuple[nn.Embedding, torch.Tensor]]:
        pairs = []
        if self.uses_gmf:
            pairs += [(self.user_gmf, users), (self.item_gmf, items)]
        if self.uses_mlp:
            pairs += [(self.user_mlp, users), (self.item_mlp, items)]
        return pairs

    @torch.no_grad()
    def fuse(self, gmf: "NCFNetwork", mlp: "NCFNetwork", alpha: float) -> None:
        """Initialise a NeuMF network from trained GMF and MLP networks (He et al., 2017, section 3.4.1).

        Embeddings and tower are copied; the output layer is [alpha h_gmf, (1 - alpha) h_mlp],
        its bias alpha b_gmf + (1 - alpha) b_mlp.
        """
        if self.kind != "neumf" or gmf.kind != "gmf" or mlp.kind != "mlp":
            raise ValueError("fuse initialises a neumf network from a gmf and an mlp network")
        for name in ("user_gmf", "item_gmf"):
            getattr(self, name).load_state_dict(getattr(gmf, name).state_dict())
        for name in ("user_mlp", "item_mlp", "first_user", "first_item", "tower"):
            getattr(self, name).load_state_dict(getattr(mlp, name).state_dict())
        self.output.weight.copy_(torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], dim=1))
        self.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)


def _embedding(rows: int, width: int, std: float, generator: torch.Generator | None) -> nn.Embedding:
    table = nn.Embedding(rows, width)
    nn.init.normal_(table.weight, std=std, generator=generator)
    return table


def _xavier(layer: nn.Linear, generator: torch.Generator | None) -> None:
    nn.init.xavier_uniform_(layer.weight, generator=generator)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
