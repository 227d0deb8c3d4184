"""GRU4Rec: a recurrent network over each user's item sequence predicts the next item.

Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent Neural
Networks" (ICLR 2016), and Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains
for Session-based Recommendations" (CIKM 2018). Here the sessions are users' whole histories;
mini-batches hold windows of many users' sequences in parallel (`model.SequenceRecommender`),
trained with cross-entropy over the whole catalogue by default, or a sampled softmax with many
popularity-drawn negatives for large catalogues (the 2018 paper's additional samples).

The GRU has no bias terms, so a zero (padding) input leaves a zero state unchanged: left padding
is then exactly equivalent to no padding, and one padded layout serves training and scoring.

Defaults: the training settings are SASRec's (see `sasrec`, shared in `NextItemConfig`), with a
64-d embedding, one GRU layer of 128 and dropout 0.2 as in the 2018 paper's setting for small
data. Only one probe ran here (`--validation` of benchmarks/protocol_quality.py, ml-100k P3,
learning rate 0.001): validation NDCG@10 0.069 after 6 epochs, where SASRec had 0.060, before the
run was stopped to free the shared CPU; no grid was searched.
"""

from typing import ClassVar

import torch
from pydantic import Field, PositiveInt
from torch import nn

from recsys_models.sequential.layers import initialise, initialise_items, seeded_dropout
from recsys_models.sequential.model import NextItemConfig, SequenceNetwork, SequenceRecommender
from recsys_models.sequential.sequences import PAD
from recsys_models.tuning import Choice, FloatRange, IntRange, SearchSpace


class GRU4RecConfig(NextItemConfig):
    """Hyperparameters of GRU4Rec; defaults from the validation search in the module docstring."""

    search_space: ClassVar[SearchSpace] = {
        "dim": Choice((32, 64, 128)),
        "hidden_size": Choice((64, 128, 256)),
        "dropout": FloatRange(0.0, 0.5),
        "learning_rate": FloatRange(3e-4, 1e-2, log=True),
        "max_length": IntRange(20, 200, log=True),
    }

    dim: PositiveInt = Field(default=64, description="Item embedding size (input and tied output).")
    hidden_size: PositiveInt = Field(default=128, description="GRU state size.")
    n_layers: PositiveInt = Field(default=1, description="Stacked GRU layers.")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout on the embeddings and the GRU output.")


class GRU4RecNetwork(SequenceNetwork):
    """Embeddings -> bias-free GRU -> linear map into the item space; scores are dot products."""

    def __init__(self, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__()
        self.dropout = config.dropout
        self.items = nn.Embedding(n_items + 1, config.dim, padding_idx=PAD)
        self.gru = nn.GRU(config.dim, config.hidden_size, config.n_layers, batch_first=True, bias=False)
        self.output = nn.Linear(config.hidden_size, config.dim)

    def encode(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        embedded = self.items(inputs) * (inputs != PAD)[..., None]  # zero input: the state stays zero
        embedded = seeded_dropout(embedded, self.dropout, generator, self.training)
        states, _ = self.gru(embedded)
        return self.output(seeded_dropout(states, self.dropout, generator, self.training))

    def item_weights(self) -> torch.Tensor:
        return self.items.weight[1:]


class GRU4Rec(SequenceRecommender):
    """GRU next-item model over users' time-ordered histories; ranks, does not rate."""

    family = "gru4rec"
    config_type = GRU4RecConfig
    config: GRU4RecConfig

    def _build_network(self, n_items: int, generator: torch.Generator | None) -> SequenceNetwork:
        network = GRU4RecNetwork(n_items, self.config)
        if generator is not None:
            initialise(network, generator)
            initialise_items(network.items, generator)
        return network
