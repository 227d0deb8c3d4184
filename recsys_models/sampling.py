"""Vectorised negative sampling for implicit-feedback training, driven by a torch.Generator.

Items are drawn uniformly or in proportion to fixed weights, typically `count ** alpha`
(word2vec-style popularity smoothing; Rendle & Freudenthaler 2014 on popularity-aware
sampling for BPR). With the users' positives given, a drawn positive is redrawn (rejection
sampling): only the rejected entries are redrawn, in a few rounds for typical sparsity.
"""

import numpy as np
import scipy.sparse as sp
import torch

MAX_REJECTION_ROUNDS = 200
FREE_MASS_TOLERANCE = 1e-9  # relative to the total weight: below this a user has no negative to draw


def popularity_weights(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Sampling weights `count ** alpha`; alpha 0 is uniform over every item, 1 is proportional to counts."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("counts must be a one-dimensional array of finite non-negative values")
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    return np.power(counts, alpha)


class NegativeSampler:
    """Draws `n_negatives` items per user, uniformly or from `weights`, optionally never a positive.

    `positives` is a (n_users, n_items) sparse matrix whose stored entries are the items a user
    must not receive; `device` is where the samples (and the generator passed to `sample`) live.
    """

    def __init__(
        self,
        n_items: int,
        weights: np.ndarray | None = None,
        positives: sp.spmatrix | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        self.n_items = n_items
        self.device = torch.device(device)
        item_weights = np.ones(n_items) if weights is None else np.asarray(weights, dtype=np.float64)
        if item_weights.shape != (n_items,) or (item_weights < 0).any() or not np.isfinite(item_weights).all():
            raise ValueError(f"weights must be {n_items} finite non-negative values")
        total = float(item_weights.sum())
        if total <= 0:
            raise ValueError("weights must not all be zero")
        self._uniform = weights is None
        self._cdf = torch.from_numpy(np.cumsum(item_weights)).to(self.device)
        self._last_item = int(np.flatnonzero(item_weights > 0)[-1])
        self._keys: torch.Tensor | None = None
        self._free_mass: torch.Tensor | None = None
        if positives is not None:
            self._set_positives(sp.csr_matrix(positives), item_weights, total)

    def _set_positives(self, positives: sp.csr_matrix, weights: np.ndarray, total: float) -> None:
        if positives.shape[1] != self.n_items:
            raise ValueError(f"positives have {positives.shape[1]} columns, expected {self.n_items} items")
        positives = positives.copy()
        positives.sum_duplicates()  # sorted, unique column indices per row: the keys below come out sorted
        rows = np.repeat(np.arange(positives.shape[0], dtype=np.int64), np.diff(positives.indptr))
        keys = rows * self.n_items + positives.indices.astype(np.int64)
        free_mass = total - np.bincount(rows, weights=weights[positives.indices], minlength=positives.shape[0])
        self._keys = torch.from_numpy(keys).to(self.device)
        self._free_mass = torch.from_numpy(free_mass / total).to(self.device)

    def _draw(self, size: int, generator: torch.Generator) -> torch.Tensor:
        if self._uniform:
            return torch.randint(self.n_items, (size,), generator=generator, device=self.device)
        target = torch.rand(size, generator=generator, device=self.device, dtype=torch.float64) * self._cdf[-1]
        return torch.searchsorted(self._cdf, target, right=True).clamp_(max=self._last_item)

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = self._keys
        if keys is None or keys.numel() == 0:
            return torch.zeros_like(items, dtype=torch.bool)
        query = users * self.n_items + items
        position = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
        return keys[position] == query

    def has_negatives(self, users: torch.Tensor) -> torch.Tensor:
        """Boolean mask of `users` that keep some sampling weight outside their positives."""
        users = users.to(self.device, torch.int64)
        if self._free_mass is None:
            return torch.ones_like(users, dtype=torch.bool)
        if users.numel() and users.max() >= self._free_mass.numel():
            raise ValueError(f"user index {int(users.max())} lies outside the positives matrix")
        return self._free_mass[users] > FREE_MASS_TOLERANCE

    def sample(self, users: torch.Tensor, n_negatives: int, generator: torch.Generator) -> torch.Tensor:
        """Item indices, shape (len(users), n_negatives); `generator` must be on the sampler's device.

        A user whose positives hold all of the sampling weight is an error (see `has_negatives`).
        """
        if n_negatives < 1:
            raise ValueError(f"n_negatives must be positive, got {n_negatives}")
        users = users.to(self.device, torch.int64)
        stuck = ~self.has_negatives(users)
        if stuck.any():
            raise ValueError(f"user {int(users[stuck][0])} has no item left to draw as a negative")
        flat_users = users.repeat_interleave(n_negatives)
        items = self._draw(flat_users.numel(), generator)
        rejected = torch.nonzero(self._is_positive(flat_users, items)).squeeze(1)
        for _ in range(MAX_REJECTION_ROUNDS):
            if rejected.numel() == 0:
                break
            items[rejected] = self._draw(rejected.numel(), generator)
            rejected = rejected[self._is_positive(flat_users[rejected], items[rejected])]
        if rejected.numel():
            raise RuntimeError(
                f"{rejected.numel()} negatives still hit positives after {MAX_REJECTION_ROUNDS} rounds: "
                "some users hold nearly all of the sampling weight"
            )
        return items.view(users.numel(), n_negatives)
