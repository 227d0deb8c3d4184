"""Small pieces the sequence networks share: seeded dropout and seeded initialisation."""

import torch
from torch import nn


def seeded_dropout(values: torch.Tensor, p: float, generator: torch.Generator | None, training: bool) -> torch.Tensor:
    """Inverted dropout drawn from `generator` (on the tensor's device), so a seed fixes the model.

    torch's own dropout draws from the global generator, which parallel training threads share.
    """
    if not training or p == 0.0:
        return values
    keep = torch.rand(values.shape, generator=generator, device=values.device) >= p
    return values * keep / (1.0 - p)


def initialise(module: nn.Module, generator: torch.Generator) -> None:
    """Xavier-uniform matrices, zero biases, unit layer-norm scales: every parameter from `generator`."""
    for name, parameter in module.named_parameters():
        with torch.no_grad():
            if parameter.ndim >= 2:
                nn.init.xavier_uniform_(parameter, generator=generator)
            elif "norm" in name and name.endswith("weight"):
                parameter.fill_(1.0)
            else:
                parameter.zero_()


def initialise_items(embedding: nn.Embedding, generator: torch.Generator) -> None:
    """Item embeddings ~ N(0, 1/dim), so tied dot-product scores start near unit scale; padding row 0."""
    with torch.no_grad():
        nn.init.normal_(embedding.weight, std=embedding.embedding_dim**-0.5, generator=generator)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx].zero_()
