"""SASRec: causal self-attention over a user's last items predicts the next one.

Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018): item embeddings scaled
by sqrt(dim) plus learned position embeddings, dropout, then blocks of (layer norm, causal
multi-head self-attention, residual) and (layer norm, point-wise feed-forward, residual), a final
layer norm, and scores as dot products with the (shared) item embeddings. Trained by default
with cross-entropy over the whole catalogue, the variant Klenitskiy & Vasilev ("Turning
Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023) show to beat the
original sampled binary cross-entropy; `loss="bce"` keeps the original objective.

Padding never leaks into real positions: a padded key is masked for every query but itself, so
a user's scores do not depend on how much padding their window holds.

Defaults (`--validation` of benchmarks/protocol_quality.py on ml-100k, P3: the protocol re-applied
to the training part, test never seen; seed 42; 2 shared CPU cores under heavy load, so the
search is short). Full softmax, dim 64, 2 blocks, 2 heads, dropout 0.2, 50 items, batch 128:

    learning rate, epochs               best valid NDCG@10   inner-test HR@10 / NDCG@10
    0.001, 40 (still rising)            0.124 (epoch 40)     0.194 / 0.097
    0.003, stopped by hand at 14        0.123 (epoch 14)     -                           <- default
    (markov on the same inner test)                          0.160 / 0.087

0.003 reaches 0.001's figure in about a third of the epochs, hence the default with at most 50
epochs and patience 5. On ml-latest-small (9,700 items, `loss="auto"` = sampled softmax) 15
epochs at 0.001 with 512 negatives were still rising (inner-test HR@10 0.036): this data set
needs many more epochs than the budget here allowed to search.
"""

import math
from typing import ClassVar

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from recsys_models.sequential.layers import initialise, initialise_items, seeded_dropout
from recsys_models.sequential.model import NextItemConfig, SequenceNetwork, SequenceRecommender
from recsys_models.sequential.sequences import PAD
from recsys_models.tuning import Choice, FloatRange, IntRange, SearchSpace


class SASRecConfig(NextItemConfig):
    """Hyperparameters of SASRec; defaults from the validation search in the module docstring."""

    search_space: ClassVar[SearchSpace] = {
        "dim": Choice((32, 64, 128)),
        "n_blocks": IntRange(1, 3),
        "dropout": FloatRange(0.0, 0.5),
        "learning_rate": FloatRange(3e-4, 1e-2, log=True),
        "max_length": IntRange(20, 200, log=True),
    }

    dim: PositiveInt = Field(default=64, description="Embedding and hidden size.")
    n_blocks: PositiveInt = Field(default=2, description="Self-attention blocks.")
    n_heads: PositiveInt = Field(default=2, description="Attention heads; must divide dim.")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout on embeddings and block outputs.")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> "SASRecConfig":
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads {self.n_heads} must divide dim {self.dim}")
        return self


class SASRecBlock(nn.Module):
    """Pre-norm causal self-attention and feed-forward, each with dropout and a residual."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, dim)
        self.contract = nn.Linear(dim, dim)

    def forward(self, values: torch.Tensor, blocked: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        normed = self.attention_norm(values)
        attended, _ = self.attention(normed, normed, normed, attn_mask=blocked, need_weights=False)
        values = values + seeded_dropout(attended, self.dropout, generator, self.training)
        hidden = seeded_dropout(
            torch.relu(self.expand(self.feed_forward_norm(values))), self.dropout, generator, self.training
        )
        return values + seeded_dropout(self.contract(hidden), self.dropout, generator, self.training)


class SASRecNetwork(SequenceNetwork):
    """Item + position embeddings -> causal self-attention blocks -> layer norm."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.dim, self.n_heads, self.dropout = config.dim, config.n_heads, config.dropout
        self.items = nn.Embedding(n_items + 1, config.dim, padding_idx=PAD)
        self.positions = nn.Embedding(config.max_length, config.dim)
        self.blocks = nn.ModuleList(
            SASRecBlock(config.dim, config.n_heads, config.dropout) for _ in range(config.n_blocks)
        )
        self.final_norm = nn.LayerNorm(config.dim)

    def encode(self, inputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        length = inputs.shape[1]
        valid = inputs != PAD
        values = self.items(inputs) * math.sqrt(self.dim) + self.positions.weight[-length:]
        values = seeded_dropout(values, self.dropout, generator, self.training) * valid[..., None]
        arange = torch.arange(length, device=inputs.device)
        future = arange[None, :] > arange[:, None]  # (query, key): a key after the query
        padded_key = ~valid[:, None, :] & (arange[None, :, None] != arange[None, None, :])
        blocked = (future[None] | padded_key).repeat_interleave(self.n_heads, dim=0)
        for block in self.blocks:
            values = block(values, blocked, generator) * valid[..., None]
        return self.final_norm(values)

    def item_weights(self) -> torch.Tensor:
        return self.items.weight[1:]


class SASRec(SequenceRecommender):
    """Self-attentive next-item model over users' time-ordered histories; ranks, does not rate."""

    family = "sasrec"
    config_type = SASRecConfig
    config: SASRecConfig

    def _build_network(self, n_items: int, generator: torch.Generator | None) -> SequenceNetwork:
        network = SASRecNetwork(n_items, self.config)
        if generator is not None:
            initialise(network, generator)
            initialise_items(network.items, generator)
        return network
