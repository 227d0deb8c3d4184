"""The network computes ratings only; training lives in the model's trainer."""

import torch
from torch import nn


class BiasedMFNetwork(nn.Module):
    """r(u, i) = mu + b_u + b_i + p_u . q_i; with `use_biases=False`, plain MF: r(u, i) = p_u . q_i.

    Without biases the global mean is still kept (as a buffer) for the cold-start fallback, but
    it takes no part in the prediction.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int,
        global_mean: float,
        init_std: float,
        use_biases: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.use_biases = use_biases
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.global_mean: torch.Tensor  # a buffer: saved with the weights, not trained
        self.register_buffer("global_mean", torch.tensor(global_mean, dtype=torch.float32))
        nn.init.normal_(self.user_factors.weight, std=init_std, generator=generator)
        nn.init.normal_(self.item_factors.weight, std=init_std, generator=generator)
        if use_biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        interaction = (self.user_factors(users) * self.item_factors(items)).sum(dim=-1)
        if not self.use_biases:
            return interaction
        return self.global_mean + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + interaction

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of `users` for every item, shape (len(users), n_items)."""
        interaction = self.user_factors(users) @ self.item_factors.weight.T
        if not self.use_biases:
            return interaction
        return self.global_mean + self.user_bias(users) + self.item_bias.weight.T + interaction

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared norms of the factors and of the biases touched by a batch (zero without biases)."""
        factors = (self.user_factors(users) ** 2).sum(-1) + (self.item_factors(items) ** 2).sum(-1)
        if not self.use_biases:
            return factors.mean(), torch.zeros((), device=factors.device)
        biases = self.user_bias(users).squeeze(-1) ** 2 + self.item_bias(items).squeeze(-1) ** 2
        return factors.mean(), biases.mean()
