"""Vectorised negative sampling for implicit-feedback training, driven by a torch.Generator.

Items are drawn uniformly or in proportion to fixed weights, typically `count ** alpha`
(word2vec-style popularity smoothing; Rendle & Freudenthaler 2014 on popularity-aware
sampling for BPR). With the users' positives given, a drawn positive is redrawn (rejection
sampling): only the rejected entries are redrawn, which settles in a few rounds for typical
sparsity. Entries still rejected after `REJECTION_ROUNDS` belong to users whose positives hold
most of the weight; they are drawn exactly from the weights with the user's positives zeroed.
Whether a drawn item is a positive is one lookup in a bitmap of the (user, item) matrix while that
fits in `BITMAP_MAX_BITS`, else a binary search in the sorted (user, item) keys.
"""

import numpy as np
import scipy.sparse as sp
import torch

REJECTION_ROUNDS = 10
FREE_MASS_TOLERANCE = 1e-9  # relative to the total weight: below this a user has no negative to draw
EXACT_DRAW_FLOATS = 1 << 22  # weight-matrix entries per chunk of the exact draw (32 MB of float64)
BITMAP_MAX_BITS = 1 << 31  # positives as a bitmap up to 256 MB (e.g. 100k users x 20k items)


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
        self._weights = torch.from_numpy(item_weights).to(self.device)
        self._cdf = torch.cumsum(self._weights, 0)
        self._last_item = int(np.flatnonzero(item_weights > 0)[-1])
        self._keys: torch.Tensor | None = None
        self._bitmap: torch.Tensor | None = None
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
        if positives.shape[0] * self.n_items <= BITMAP_MAX_BITS:
            bitmap = np.zeros((positives.shape[0] * self.n_items + 7) // 8, dtype=np.uint8)
            np.bitwise_or.at(bitmap, keys >> 3, np.left_shift(1, keys & 7).astype(np.uint8))
            self._bitmap = torch.from_numpy(bitmap).to(self.device)
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
        if self._bitmap is not None:
            return (self._bitmap[query >> 3] >> (query & 7).to(torch.uint8)) & 1 == 1
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
        for _ in range(REJECTION_ROUNDS):
            if rejected.numel() == 0:
                break
            items[rejected] = self._draw(rejected.numel(), generator)
            rejected = rejected[self._is_positive(flat_users[rejected], items[rejected])]
        if rejected.numel():
            items[rejected] = self._draw_excluding_positives(flat_users[rejected], generator)
        return items.view(users.numel(), n_negatives)

    def _draw_excluding_positives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One exact draw per entry from the weights with that user's positives zeroed.

        Per chunk of distinct users: their zeroed weight rows, one cumulative sum over the rows
        laid end to end, and an inverse-CDF lookup of a uniform point inside the entry's own row.
        """
        keys = self._keys
        if keys is None:
            raise RuntimeError("exact draws need the positives")
        distinct, row_of_entry = torch.unique(users, return_inverse=True)
        drawn = torch.empty_like(users)
        rows_per_chunk = max(1, EXACT_DRAW_FLOATS // self.n_items)
        for start in range(0, distinct.numel(), rows_per_chunk):
            chunk = distinct[start : start + rows_per_chunk]
            first = torch.searchsorted(keys, chunk * self.n_items)
            count = torch.searchsorted(keys, (chunk + 1) * self.n_items) - first
            row = torch.repeat_interleave(torch.arange(chunk.numel(), device=self.device), count)
            rank = torch.arange(row.numel(), device=self.device) - torch.repeat_interleave(
                torch.cumsum(count, 0) - count, count
            )
            weights = self._weights.repeat(chunk.numel(), 1)
            weights[row, keys[first[row] + rank] - chunk[row] * self.n_items] = 0.0
            cumulative = torch.cumsum(weights.view(-1), 0)
            row_end = cumulative.view(chunk.numel(), self.n_items)[:, -1]
            row_start = torch.cat([row_end.new_zeros(1), row_end[:-1]])  # exactly where the row's sums begin
            columns = torch.arange(self.n_items, device=self.device)
            last_drawable = torch.where(weights > 0, columns, 0).amax(1) + columns.numel() * torch.arange(
                chunk.numel(), device=self.device
            )
            entries = torch.nonzero((row_of_entry >= start) & (row_of_entry < start + chunk.numel())).squeeze(1)
            entry_row = row_of_entry[entries] - start
            uniform = torch.rand(entries.numel(), generator=generator, device=self.device, dtype=torch.float64)
            target = row_start[entry_row] + uniform * (row_end - row_start)[entry_row]
            flat = torch.minimum(torch.searchsorted(cumulative, target, right=True), last_drawable[entry_row])
            drawn[entries] = flat - entry_row * self.n_items
        return drawn
