"""What the blending hybrids share: the collaborative component trained through the registry,
per-user score normalisation, per-user validation NDCG, and save/load of nested models.

A hybrid's folder holds its own model.json / state.npz / vocabulary.npz (base.py) plus one
sub-folder per part under `parts/` (`parts/collaborative`, `parts/content`), each a complete
saved model of its own family, so save/load stays one folder and no object is pickled.
"""

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys_models.base import Recommender
from recsys_models.content import ContentTFIDF, ContentTFIDFConfig
from recsys_models.interactions import Interactions
from recsys_models.leaf_families import leaf_class, load_leaf, make_leaf_config
from recsys_models.metrics import ranking_metrics
from recsys_models.options import TrainingOptions
from recsys_models.top_k import top_k

PARTS_FOLDER = "parts"
HYBRID_FAMILIES = ("hybrid_weighted", "hybrid_switching")  # not allowed as a component of themselves
COLLABORATIVE, CONTENT = "collaborative", "content"


def component_config(family: str, values: dict[str, Any]) -> BaseModel:
    """The validated config of a collaborative component (a leaf family)."""
    if family in HYBRID_FAMILIES:
        raise ValueError(f"a hybrid's component must not be a blending hybrid itself, got {family!r}")
    return make_leaf_config(family, values)


def fit_component(
    family: str,
    values: dict[str, Any],
    options: TrainingOptions,
    train: Interactions,
    valid: Interactions | None,
    item_features: Any,
) -> Recommender:
    """Train the component family on `train` (and `valid`, which it uses as its own class says)."""
    model_class = leaf_class(family)
    features = item_features if model_class.uses_item_features else None
    return model_class(component_config(family, values), options).fit(train, valid, features)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes zeros)."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.where(std > 0, std, 1.0)


def standardise_like(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`scores` standardised with the row means and deviations of `reference` (same users)."""
    mean = reference.mean(axis=1, keepdims=True)
    std = reference.std(axis=1, keepdims=True)
    return ((np.asarray(scores, dtype=np.float32) - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def validation_targets(
    train: Interactions, valid: Interactions, threshold: float | None
) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
    """(relevant, excluded) over (n_users, n_items): validation rows at or above `threshold` (every
    row when None) and the training history; None when no validation row is relevant."""
    keep = np.ones(len(valid), dtype=bool) if threshold is None else valid.rating >= threshold
    if not keep.any():
        return None
    relevant = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (valid.user_idx[keep], valid.item_idx[keep])),
        shape=(valid.n_users, valid.n_items),
    )
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    return relevant, train.tocsr(values="binary")


Key = TypeVar("Key", bound=Hashable)  # what names a candidate scoring: a blend weight, a part's name


def per_user_ndcg(
    candidates: Callable[[np.ndarray], dict[Key, np.ndarray]],
    relevant: sp.csr_matrix,
    excluded: sp.csr_matrix,
    k: int = 10,
    batch_size: int = 1024,
) -> tuple[np.ndarray, dict[Key, np.ndarray]]:
    """NDCG@k of every user with a relevant item, for each candidate scoring at once.

    `candidates(users)` returns {key: (len(users), n_items) scores}; the users' history is
    excluded from the ranking. Returns the evaluated users and {key: per-user NDCG}.
    """
    relevant = sp.csr_matrix(relevant)
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant)
    values: dict[Key, np.ndarray] = {}
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        target = relevant[batch].toarray() > 0
        blocked = excluded[batch]
        for key, scores in candidates(batch).items():
            top = top_k(scores, k, blocked)[0]
            depth = top.shape[1]
            hits = np.take_along_axis(target, top, axis=1)
            if depth < k:
                hits = np.pad(hits, ((0, 0), (0, k - depth)))
            values.setdefault(key, np.empty(users.size))[start : start + batch.size] = ranking_metrics(
                hits, n_relevant[batch]
            )["ndcg"]
    return users, values


class BlendConfig(BaseModel):
    """What every collaborative + content hybrid is configured with; each hybrid adds its own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str = Field(default="ease", description="Collaborative family of the hybrid (any registered).")
    component_config: dict[str, Any] = Field(
        default_factory=dict, description="Hyperparameters of the component, validated by its own config."
    )
    content: ContentTFIDFConfig = Field(default_factory=ContentTFIDFConfig, description="The content part.")
    relevance_threshold: float | None = Field(
        default=4.0, description="Validation ratings at or above are relevant; None makes every row relevant."
    )

    @model_validator(mode="after")
    def _valid_component(self) -> Self:
        component_config(self.component, self.component_config)
        return self


class CompositeRecommender(Recommender):
    """A recommender made of other fitted recommenders (`part_names`), saved in sub-folders."""

    part_names: ClassVar[tuple[str, ...]] = (COLLABORATIVE, CONTENT)
    config: BlendConfig  # each subclass names its own

    def __init__(self, config: BaseModel | None = None, options: TrainingOptions | None = None) -> None:
        super().__init__(config, options)
        self._parts: dict[str, Recommender] = {}

    def part(self, name: str) -> Recommender:
        """A fitted part by name (`collaborative`, `content`)."""
        return self._require(self._parts.get(name))

    def _fit_parts(self, train: Interactions, valid: Interactions | None, item_features: Any) -> dict:
        """The collaborative component and the content model of a `BlendConfig`, fitted on `train`
        (and `valid`, which each uses as its own class says)."""
        config = self.config
        collaborative = fit_component(
            config.component, config.component_config, self.options, train, valid, item_features
        )
        content = ContentTFIDF(config.content, self.options).fit(train, valid, item_features)
        return {COLLABORATIVE: collaborative, CONTENT: content}

    def save(self, directory: Path) -> None:
        super().save(directory)
        for name in self.part_names:
            self.part(name).save(directory / PARTS_FOLDER / name)

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = super().load(directory)
        model._parts = {name: load_leaf(directory / PARTS_FOLDER / name) for name in cls.part_names}
        return model
