"""Ranking losses shared by the neural families: plain functions of score tensors.

`positive` holds one score per training pair, shape (batch,); `negative` holds the scores of
that pair's sampled negatives, shape (batch,) or (batch, n_negatives). An optional boolean
`mask` of the negatives' shape drops entries (e.g. padding) from the mean.
"""

import torch
import torch.nn.functional as F


def _pairwise(positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`positive` broadcast against `negative`, after checking their shapes agree."""
    if positive.ndim != 1 or negative.ndim not in (1, 2) or negative.shape[0] != positive.shape[0]:
        raise ValueError(
            f"positive must be (batch,) and negative (batch,) or (batch, n); got {tuple(positive.shape)}, "
            f"{tuple(negative.shape)}"
        )
    return (positive if negative.ndim == 1 else positive[:, None]), negative


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(values.shape)}")
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al., 2009): mean of -log sigmoid(s_pos - s_neg)."""
    positive, negative = _pairwise(positive, negative)
    return _masked_mean(-F.logsigmoid(positive - negative), mask)


def binary_cross_entropy_loss(
    positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Pointwise log loss on logits, positives labelled 1 and negatives 0 (He et al., 2017, NCF).

    The two halves are averaged separately and summed, so the number of negatives per
    positive does not change the weight of the positives.
    """
    positive, negative = _pairwise(positive, negative)
    positive_term = -F.logsigmoid(positive).mean()
    return positive_term + _masked_mean(-F.logsigmoid(-negative), mask)


def multinomial_loss(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Negative multinomial log-likelihood of each row's counts, averaged over rows (Liang et al., 2018).

    `logits` and `counts` are (batch, n_items); the row's item probabilities are softmax(logits),
    and the loss of a row is -sum_i counts_i log p_i (the multinomial coefficient is constant).
    """
    if logits.shape != counts.shape or logits.ndim != 2:
        raise ValueError(
            f"logits and counts must be equal (batch, n) shapes; got {tuple(logits.shape)}, {tuple(counts.shape)}"
        )
    return -(F.log_softmax(logits, dim=1) * counts).sum(1).mean()


def gaussian_kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) summed over latent dimensions, averaged over rows."""
    if mean.shape != log_variance.shape:
        raise ValueError(f"mean {tuple(mean.shape)} and log_variance {tuple(log_variance.shape)} differ in shape")
    return 0.5 * (log_variance.exp() + mean**2 - 1.0 - log_variance).sum(-1).mean()
