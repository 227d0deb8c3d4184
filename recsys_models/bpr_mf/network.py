"""The BPR-MF network computes preference scores only; training lives in the model's trainer."""

import torch
from torch import nn


class BPRMFNetwork(nn.Module):
    """s(u, i) = p_u . q_i (+ b_i with `item_bias`), the preference model of Rendle et al. (2009)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int,
        init_std: float,
        item_bias: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        nn.init.normal_(self.user_factors.weight, std=init_std, generator=generator)
        nn.init.normal_(self.item_factors.weight, std=init_std, generator=generator)
        self.item_bias = nn.Embedding(n_items, 1) if item_bias else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs; `users` (batch,) or (batch, 1) broadcasts against `items`."""
        scores = (self.user_factors(users) * self.item_factors(items)).sum(dim=-1)
        if self.item_bias is not None:
            scores = scores + self.item_bias(items).squeeze(-1)
        return scores

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of `users` for every item, shape (len(users), n_items)."""
        scores = self.user_factors(users) @ self.item_factors.weight.T
        if self.item_bias is not None:
            scores = scores + self.item_bias.weight.T
        return scores

    def batch_terms(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores of the positives (batch,) and negatives (batch, n), and the L2 penalty, from one lookup.

        The penalty is the batch mean of |p_u|^2 + |q_i|^2 + mean_j |q_j|^2 (plus the squared
        biases of i and j). Looking every row up once halves the embedding backward passes.
        """
        user = self.user_factors(users)
        items = torch.cat([positives[:, None], negatives], 1)
        factors = self.item_factors(items)
        scores = (factors * user[:, None, :]).sum(-1)  # a broadcast product: CPU bmm is slow on tiny matrices
        squares = factors.square().sum(-1)
        norms = user.square().sum(-1) + squares[:, 0] + squares[:, 1:].mean(-1)
        if self.item_bias is not None:
            bias = self.item_bias(items).squeeze(-1)
            scores = scores + bias
            norms = norms + bias[:, 0].square() + bias[:, 1:].square().mean(-1)
        return scores[:, 0], scores[:, 1:], norms.mean()
