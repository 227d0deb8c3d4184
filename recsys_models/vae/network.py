"""The Mult-VAE / Mult-DAE network (Liang et al., 2018) maps a user's item history to item logits.

Encoder [n_items -> hidden... -> latent] and decoder [latent -> hidden reversed... -> n_items]
with tanh between layers. The input row is L2-normalised and, in training, dropped out. A
history enters as its entries (item indices laid end to end, row by row), and the first layer
sums the rows of its weight that the entries pick (`embedding_bag`): the same product as a dense
row times the weight, at the cost of the history's length instead of the catalogue's. The
variational network's encoder returns a mean and a log-variance and samples z by
reparameterisation; the denoising one is deterministic. Randomness (dropout, z) comes from the
generator passed in, never from torch's global generator, so a seed fixes the model.
"""

import torch
import torch.nn.functional as F
from torch import nn


class MultVAENetwork(nn.Module):
    """Item logits from user histories; softmax over items gives the multinomial."""

    def __init__(
        self,
        n_items: int,
        hidden: tuple[int, ...],
        latent: int,
        variational: bool,
        dropout: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.variational, self.dropout, self.latent = variational, dropout, latent
        encoder_widths = (*hidden, 2 * latent if variational else latent)
        decoder_widths = (latent, *reversed(hidden), n_items)
        first = _linear(n_items, encoder_widths[0], generator)
        self.input_weight = nn.Parameter(first.weight.detach().T.contiguous())  # (n_items, width): one row per item
        self.input_bias = first.bias
        self.encoder = nn.ModuleList(
            _linear(a, b, generator) for a, b in zip(encoder_widths, encoder_widths[1:], strict=False)
        )
        self.decoder = nn.ModuleList(
            _linear(a, b, generator) for a, b in zip(decoder_widths, decoder_widths[1:], strict=False)
        )

    def encode(
        self, items: torch.Tensor, offsets: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance) of q(z | history); the log-variance is None for the denoising network.

        `items` holds the batch's history entries row after row, `offsets` where each row starts.
        With a `generator` in training mode, input dropout is applied after normalisation.
        """
        counts = torch.diff(offsets, append=offsets.new_tensor([items.numel()]))
        values = torch.repeat_interleave(counts.clamp_min(1).float().rsqrt(), counts)
        if self.training and generator is not None and self.dropout > 0:
            keep = torch.rand(values.shape, generator=generator, device=values.device) >= self.dropout
            values = values * keep / (1.0 - self.dropout)
        hidden = F.embedding_bag(items, self.input_weight, offsets, mode="sum", per_sample_weights=values)
        hidden = hidden + self.input_bias
        for layer in self.encoder:
            hidden = layer(torch.tanh(hidden))
        if not self.variational:
            return hidden, None
        return hidden[:, : self.latent], hidden[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        hidden = z
        for index, layer in enumerate(self.decoder):
            hidden = layer(hidden)
            if index < len(self.decoder) - 1:
                hidden = torch.tanh(hidden)
        return hidden

    def forward(
        self, items: torch.Tensor, offsets: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(logits, mean, log-variance); z is sampled in training mode with a `generator`, else the mean."""
        mean, log_variance = self.encode(items, offsets, generator)
        z = mean
        if self.training and generator is not None and log_variance is not None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            z = mean + noise * torch.exp(0.5 * log_variance)
        return self.decode(z), mean, log_variance


def _linear(width_in: int, width_out: int, generator: torch.Generator | None) -> nn.Linear:
    """Xavier-initialised weights and small normal biases, as in the paper's code."""
    layer = nn.Linear(width_in, width_out)
    nn.init.xavier_uniform_(layer.weight, generator=generator)
    nn.init.normal_(layer.bias, std=0.001, generator=generator)
    return layer
