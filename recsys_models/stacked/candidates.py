"""Stage one of the stacked family: the union of every part's top-N items per row (a user, or a
history given at scoring time), from the parts' score matrices, with each part's score and rank
of every candidate (whether that part proposed it or not)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Candidates:
    """(user, item) candidate rows grouped by user, in the order of `users` then item index; for
    histories, `users` are the rows' positions in the batch.

    `rows[offsets[u]:offsets[u + 1]]` are the candidates of `users[u]`; `scores[:, p]` and
    `ranks[:, p]` are part p's raw score and 1-based rank (over the user's allowed items) of each
    row; `proposed[:, p]` says whether part p put the item in its top N.
    """

    users: np.ndarray
    items: np.ndarray
    user_rows: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    proposed: np.ndarray

    def __len__(self) -> int:
        return int(self.items.size)

    def group_sizes(self) -> np.ndarray:
        """Candidates per user, in the order of `users`."""
        return np.diff(self.offsets)


def part_rankings(scores: np.ndarray, blocked: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    """Scores with blocked (seen) items at -inf, and every item's 1-based rank per row (ties by index)."""
    scores = np.array(scores, dtype=np.float32)
    if blocked is not None:
        coo = blocked.tocoo()
        scores[coo.row, coo.col] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(scores.shape[0], 0), axis=1)
    return scores, ranks


def generate_candidates(
    users: np.ndarray, part_scores: Sequence[np.ndarray], blocked: sp.csr_matrix | None, n_candidates: int
) -> Candidates:
    """Each part's top `n_candidates` allowed items per row, united. `part_scores` are the parts'
    (len(users), n_items) score matrices, `blocked` the items no part may propose per row (the seen
    ones; None: none). Every part scores every candidate, so each row carries all parts' signals."""
    users = np.asarray(users, dtype=np.int64)
    n_items = part_scores[0].shape[1]
    union = np.zeros((users.size, n_items), dtype=bool)
    rankings = []
    for part in part_scores:
        scores, ranks = part_rankings(part, blocked)
        proposed = (ranks <= n_candidates) & np.isfinite(scores)
        union |= proposed
        rankings.append((scores, ranks, proposed))
    user_rows, items = np.nonzero(union)
    offsets = np.searchsorted(user_rows, np.arange(users.size + 1))
    return Candidates(
        users=users,
        items=items.astype(np.int64),
        user_rows=user_rows.astype(np.int64),
        offsets=offsets.astype(np.int64),
        scores=np.stack([scores[user_rows, items] for scores, _, _ in rankings], axis=1),
        ranks=np.stack([ranks[user_rows, items] for _, ranks, _ in rankings], axis=1).astype(np.float32),
        proposed=np.stack([proposed[user_rows, items] for _, _, proposed in rankings], axis=1),
    )


def candidate_recall(candidates: Candidates, relevant: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-user share of relevant items among the candidates, over the candidates' users with a
    relevant item (rows of `relevant` indexed like `candidates.users`); returns (users, recall)."""
    relevant = sp.csr_matrix(relevant[candidates.users])
    n_relevant = np.diff(relevant.indptr)
    hit = np.asarray(relevant[candidates.user_rows, candidates.items]).ravel() > 0
    hits = np.bincount(candidates.user_rows, weights=hit, minlength=candidates.users.size)
    keep = n_relevant > 0
    return candidates.users[keep], hits[keep] / n_relevant[keep]
