"""Stacked recommender: candidates from several families, re-ranked by a learned ranker (the
two-stage design of production recommenders, e.g. Covington et al. 2016, "Deep Neural Networks
for YouTube Recommendations"; the ranker is LambdaMART, Burges 2010).

Stage one (`candidates.py`): each part (any leaf family) proposes its top `n_candidates`
allowed items per user; the union is the candidate set, and every part scores every candidate.
Stage two (`ranker.py`): LightGBM LambdaRank over the features of `features.py`.

Training never sees the test part: the parts are fitted on the training part (train + valid)
without each user's latest `ranker_tail` share of rows, the ranker learns to put that tail's
relevant items first among those parts' candidates (graded: other tail rows count as weaker
positives; early stopping on held-out users; boosting starts from the best part's standardised
score), then the parts are refit on train + valid (each as its class uses validation) and the
ranker is kept. With `ranker_tail: null` the tail is the validation part `fit` gets (each user's
latest `valid_fraction` of rows where it gets none). A part that uses validation itself (the
neural families' early stopping) gets, in the first stage, a per-user tail of its training rows.

`score` gives the ranker's scores on the candidates and, below all of them, a constant on every
other item, so that ranking by `score` and `recommend` agree. Saved as one folder: the shared
files, `ranker.txt` (LightGBM's text format), `ranker_report.json` (candidate recall, feature
importances) and every part under `parts/<family>`. `score_history` runs the same two stages on
histories given at scoring time: the parts' `score_history`, the history's own items as the seen
ones and its own length and latest timestamp as the user context (`Rows`: one code path for
training, `score` and `score_history`).
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel

from recsys_models.base import Recommender
from recsys_models.features import ItemFeatures
from recsys_models.history import HistoryBatch
from recsys_models.hybrid.parts import PARTS_FOLDER, fit_component
from recsys_models.interactions import Interactions
from recsys_models.io import atomic_write_bytes, atomic_write_json
from recsys_models.leaf_families import leaf_class, load_leaf
from recsys_models.options import TrainingOptions
from recsys_models.stacked.candidates import Candidates, candidate_recall, generate_candidates
from recsys_models.stacked.config import CONTENT_PART, StackedConfig
from recsys_models.stacked.features import ContextStats, build_features, feature_names
from recsys_models.stacked.ranker import LambdaRanker, group_ndcg

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.txt"
RANKER_REPORT_FILE = "ranker_report.json"  # candidate recall and feature importances: model card, report, MLflow
BATCH_CELLS = 1 << 21  # users x items scored at once per part (bounds stage one's memory on large catalogues)


def user_tail(data: Interactions, fraction: float) -> tuple[Interactions, Interactions]:
    """(head, tail): each user's latest ceil(fraction * m) of m rows (by time, then item) in the tail,
    for users with at least 3 rows; the same vocabularies."""
    order = np.lexsort((data.item_idx, data.timestamp, data.user_idx))
    users = data.user_idx[order]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(users.size) - starts[users]
    n_tail = np.where(counts >= 3, np.ceil(fraction * counts).astype(np.int64), 0)
    in_tail = np.zeros(len(data), dtype=bool)
    in_tail[order] = position >= counts[users] - n_tail[users]

    def rows(mask: np.ndarray) -> Interactions:
        return Interactions(
            data.user_idx[mask], data.item_idx[mask], data.rating[mask], data.timestamp[mask], data.users, data.items
        )

    return rows(~in_tail), rows(in_tail)


@dataclass(frozen=True)
class Rows:
    """What the two stages read of a batch of rows (users, or histories): each part's and the content
    part's (n_rows, n_items) scores, the items blocked per row (seen; None: none) and each row's
    interaction count and latest timestamp; `users` are the rows' user indices (positions for histories)."""

    users: np.ndarray
    part_scores: list[np.ndarray]
    blocked: sp.csr_matrix | None
    user_count: np.ndarray
    user_last: np.ndarray
    content: np.ndarray | None


class Stacked(Recommender):
    """Union of several families' candidates, ordered by a LambdaRank model over their signals;
    ranks, does not rate."""

    family = "stacked"
    config_type = StackedConfig
    config: StackedConfig
    predicts_ratings = False
    uses_validation = True
    uses_item_features = True

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        self._parts: dict[str, Recommender] = {}
        self._content: Recommender | None = None
        self._ranker: LambdaRanker | None = None
        self._stats: ContextStats | None = None
        self.candidate_recall: dict[str, float] = {}
        self._part_names: list[str] = []  # set by _restore; load() then reads the parts' folders
        self._has_content = False
        self._base_feature: str | None = None

    # --- training -------------------------------------------------------------------------
    def _fit_part(self, family: str, train: Interactions, valid: Interactions | None, features: Any) -> Recommender:
        values = self.config.content_config if family == CONTENT_PART else self.config.part_configs()[family]
        if leaf_class(family).uses_validation and valid is None:
            train, valid = user_tail(train, self.config.valid_fraction)
        return fit_component(family, values, self.options, train, valid, features)

    def _fit_parts(self, train: Interactions, valid: Interactions | None, features: Any) -> None:
        """Every candidate part (and the content part, when there are item features) on `train`
        (+ `valid`); without `valid`, validating parts validate on a per-user tail of `train`."""
        self._parts = {family: self._fit_part(family, train, valid, features) for family in self.config.part_configs()}
        use_content = self.config.content and isinstance(features, ItemFeatures) and features.n_features > 0
        self._content = self._fit_part(CONTENT_PART, train, valid, features) if use_content else None
        self._stats = ContextStats.from_interactions(train if valid is None else train.concat(valid))

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        config = self.config
        if valid is None or len(valid) == 0:
            train, valid = user_tail(train, config.valid_fraction)
        head, tail = (
            (train, valid) if config.ranker_tail is None else user_tail(train.concat(valid), config.ranker_tail)
        )
        self._fit_parts(head, None, item_features)
        features, labels, sizes = self._ranker_data(head, self._targets(tail))
        names = self.feature_names()
        base = None
        if config.boost_from_best_part:
            base = max(
                (f"{part}_score_z" for part in self._parts),
                key=lambda name: group_ndcg(features[:, names.index(name)], labels, sizes),
            )
        self._ranker, curve = LambdaRanker.fit(features, labels, sizes, names, config.ranker, self.options.seed, base)
        recall_key = f"valid_candidate_recall_at_{config.n_candidates}"
        self.history = [
            record | ({recall_key: self.candidate_recall["all"]} if index == 0 else {})
            for index, record in enumerate(curve)
        ]
        logger.info(
            "%s: candidate recall@%d %.3f on %d users; ranker %d rounds from %s",
            self.family,
            config.n_candidates,
            self.candidate_recall["all"],
            sizes.size,
            self._ranker.rounds,
            base,
        )
        self._fit_parts(train, valid, item_features)

    def _ranker_data(self, head: Interactions, labels: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, labels, group sizes) of the candidates of every user with a positive among them,
        from the parts fitted on `head`; sets `candidate_recall` (relevant rows only, as evaluation)."""
        users = np.flatnonzero(np.diff(labels.indptr))
        if users.size == 0:
            raise ValueError(f"{self.family}: no user has a row in the ranker's tail; nothing to learn from")
        relevant = labels.copy()
        relevant.data = (relevant.data >= relevant.data.max(initial=0.0)).astype(np.float32)
        relevant.eliminate_zeros()
        seen, step = head.tocsr(values="binary"), self._batch_users(head.n_items)
        blocks, targets, sizes, recalls = [], [], [], []
        for start in range(0, users.size, step):
            candidates, features = self._stages(self._user_rows(users[start : start + step], seen))
            blocks.append(features)
            targets.append(np.asarray(labels[candidates.users[candidates.user_rows], candidates.items]).ravel())
            sizes.append(candidates.group_sizes())
            recalls.append(self._recalls(candidates, relevant))
        self.candidate_recall = {
            name: float(np.mean(np.concatenate([r[name] for r in recalls]))) for name in recalls[0]
        }
        features, target, size = np.vstack(blocks), np.concatenate(targets), np.concatenate(sizes)
        group = np.repeat(np.arange(size.size), size)
        useful = np.bincount(group, weights=target, minlength=size.size) > 0  # the others teach nothing
        if not useful.any():
            raise ValueError(f"{self.family}: no candidate of any user is in the ranker's tail; nothing to learn")
        keep = useful[group]
        return features[keep], target[keep].astype(np.float32), size[useful]

    @staticmethod
    def _batch_users(n_items: int) -> int:
        """Users per stage-one batch: at most 256, fewer on large catalogues."""
        return int(max(1, min(256, BATCH_CELLS // max(n_items, 1))))

    def _targets(self, valid: Interactions) -> sp.csr_matrix:
        """(n_users, n_items) labels of the ranker: 2 for relevant validation rows, 1 for the other
        validation rows when `graded` (else 0), 0 for everything else; binary 1 when every row counts."""
        threshold = self.config.relevance_threshold
        relevant = np.ones(len(valid), dtype=bool) if threshold is None else valid.rating >= threshold
        if not relevant.any():
            logger.warning("%s: no validation rating reaches %s; every validation row counts", self.family, threshold)
            relevant[:] = True
        if relevant.all():
            label = np.ones(len(valid), dtype=np.float32)
        else:
            label = np.where(relevant, 2.0, 1.0 if self.config.graded else 0.0).astype(np.float32)
        matrix = sp.coo_matrix((label, (valid.user_idx, valid.item_idx)), shape=(valid.n_users, valid.n_items)).tocsr()
        matrix.sum_duplicates()
        if matrix.nnz:
            matrix.data = np.minimum(matrix.data, label.max())  # a pair seen twice keeps one label
        matrix.eliminate_zeros()
        return matrix

    def _recalls(self, candidates: Candidates, relevant: sp.csr_matrix) -> dict[str, np.ndarray]:
        """Per-user candidate recall of the union (`all`) and of each part's own top N."""
        result = {"all": candidate_recall(candidates, relevant)[1]}
        for index, name in enumerate(self._parts):
            mask = candidates.proposed[:, index]
            own = Candidates(
                candidates.users,
                candidates.items[mask],
                candidates.user_rows[mask],
                candidates.offsets,
                candidates.scores[mask],
                candidates.ranks[mask],
                candidates.proposed[mask],
            )
            result[name] = candidate_recall(own, relevant)[1]
        return result

    # --- scoring --------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        """The ranker's feature columns."""
        return feature_names(list(self._parts), self._content is not None)

    def _user_rows(self, users: np.ndarray, seen: sp.csr_matrix) -> Rows:
        """Known users' rows: the parts' `score`, `seen` (users x items) blocked, context from the stats."""
        blocked = None if self.config.seen_candidates else sp.csr_matrix(seen[users])
        count, last = self._require(self._stats).user_context(users)
        content = None if self._content is None else self._content.score(users)
        return Rows(users, [part.score(users) for part in self._parts.values()], blocked, count, last, content)

    def _history_rows(self, history: HistoryBatch) -> Rows:
        """Histories' rows: the parts' `score_history`, their own items blocked, context from themselves."""
        blocked = None if self.config.seen_candidates else history.rows.tocsr("binary")
        count, last = self._require(self._stats).history_context(history)
        content = None if self._content is None else self._content.score_history(history)
        part_scores = [part.score_history(history) for part in self._parts.values()]
        return Rows(np.arange(len(history), dtype=np.int64), part_scores, blocked, count, last, content)

    def _stage_one(self, rows: Rows) -> Candidates:
        return generate_candidates(rows.users, rows.part_scores, rows.blocked, self.config.n_candidates)

    def _stages(self, rows: Rows) -> tuple[Candidates, np.ndarray]:
        """The rows' candidates and their features (the ranker's input)."""
        candidates = self._stage_one(rows)
        content = None if rows.content is None else rows.content[candidates.user_rows, candidates.items]
        stats = self._require(self._stats)
        return candidates, build_features(candidates, stats, rows.user_count, rows.user_last, content)

    def _ranked(self, n_rows: int, rows_of: Callable[[np.ndarray], Rows]) -> np.ndarray:
        """(n_rows, n_items) ranker scores on the candidates, every other item one below the row's
        lowest candidate; `rows_of` gives the `Rows` of a batch of row positions."""
        ranker = self._require(self._ranker)
        full = np.zeros((n_rows, self.n_items), dtype=np.float32)
        step = self._batch_users(self.n_items)
        for start in range(0, n_rows, step):
            batch = np.arange(start, min(start + step, n_rows))
            candidates, features = self._stages(rows_of(batch))
            scores = ranker.predict(features).astype(np.float32)
            lowest = np.full(batch.size, np.inf, dtype=np.float32)
            np.minimum.at(lowest, candidates.user_rows, scores)
            floor = np.where(np.isfinite(lowest), lowest - 1.0, 0.0).astype(np.float32)
            block = np.repeat(floor[:, None], self.n_items, axis=1)
            block[candidates.user_rows, candidates.items] = scores
            full[batch] = block
        return full

    def candidates(self, user_indices: np.ndarray) -> Candidates:
        """Stage one for these users: every part's top N allowed items, united."""
        users = self._check_users(user_indices)
        return self._stage_one(self._user_rows(users, self.seen))

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Ranker scores on the candidates; every other item one below the user's lowest candidate."""
        users = self._check_users(user_indices)
        return self._ranked(users.size, lambda batch: self._user_rows(users[batch], self.seen))

    def score_history(self, history: HistoryBatch) -> np.ndarray:
        """`score` of each row as a user's history: exact where the parts' history scores are."""
        return self._ranked(len(history), lambda batch: self._history_rows(history.subset(batch)))

    @property
    def parts(self) -> dict[str, Recommender]:
        """The fitted candidate parts by family."""
        return dict(self._require(self._parts or None))

    def importances(self) -> dict[str, float]:
        """Each feature's share of the ranker's total split gain, largest first."""
        gains = self._require(self._ranker).importances()
        return dict(sorted(gains.items(), key=lambda item: -item[1]))

    def report(self) -> dict[str, Any]:
        """Candidate recall@N on the ranker's tail (the union and each part's own top N), the ranker's
        rounds and starting part, and the feature importances (share of split gain)."""
        depth = self.config.n_candidates
        ranker = self._require(self._ranker)
        recall = {
            f"candidate_recall_at_{depth}" + ("" if name == "all" else f"_{name}"): value
            for name, value in self.candidate_recall.items()
        }
        return recall | {
            "ranker_rounds": ranker.rounds,
            "ranker_base": ranker.base or "",
            "feature_importance": self.importances(),
        }

    # --- persistence ----------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        recall = self.candidate_recall
        return {
            "part_names": np.array(list(self._parts), dtype=str),
            "has_content": np.array(self._content is not None),
            "base_feature": np.array(self._require(self._ranker).base or ""),
            "recall_names": np.array(list(recall), dtype=str),
            "recall_values": np.array(list(recall.values()), dtype=np.float64),
            **self._require(self._stats).to_state("stats_"),
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._part_names = [str(name) for name in state["part_names"]]
        self._has_content = bool(state["has_content"])
        self._base_feature = str(state["base_feature"]) or None
        self.candidate_recall = dict(
            zip(state["recall_names"].astype(str).tolist(), state["recall_values"].tolist(), strict=True)
        )
        self._stats = ContextStats.from_state("stats_", state)

    def save(self, directory: Path) -> None:
        """The shared files, the ranker as LightGBM text, and every part in `parts/<family>`."""
        super().save(directory)
        atomic_write_bytes(directory / RANKER_FILE, self._require(self._ranker).to_text().encode())
        atomic_write_json(directory / RANKER_REPORT_FILE, self.report())
        for name, part in self.parts.items():
            part.save(directory / PARTS_FOLDER / name)
        if self._content is not None:
            self._content.save(directory / PARTS_FOLDER / CONTENT_PART)

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = super().load(directory)
        model._ranker = LambdaRanker.from_text((directory / RANKER_FILE).read_text(), model._base_feature)
        model._parts = {name: load_leaf(directory / PARTS_FOLDER / name) for name in model._part_names}
        model._content = load_leaf(directory / PARTS_FOLDER / CONTENT_PART) if model._has_content else None
        return model


def describe(model: Stacked) -> str:
    """One line: candidate recall and the top features, for logs and benchmarks."""
    top = ", ".join(f"{name} {share:.2f}" for name, share in list(model.importances().items())[:5])
    recall = model.candidate_recall.get("all", math.nan)
    return f"candidate recall@{model.config.n_candidates} {recall:.3f}; top features: {top}"
