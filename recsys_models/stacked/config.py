"""Hyperparameters of the stacked family: its parts, its candidate depth and its ranker."""

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recsys_models.leaf_families import make_leaf_config

DEFAULT_PARTS = ("ease", "als", "item_knn", "two_tower", "mult_vae", "sasrec", "popularity")
SEEN_PART = "repeat"  # joins the default parts where seen items are candidates (repeat consumption)
CONTENT_PART = "content_tfidf"  # scored as a feature (content similarity to the history), proposes nothing


class RankerConfig(BaseModel):
    """LightGBM LambdaRank settings of the learned ranker (second stage)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_estimators: PositiveInt = Field(
        default=600, description="Most boosting rounds; early stopping usually ends sooner."
    )
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0, description="Shrinkage of each tree.")
    num_leaves: int = Field(default=31, ge=2, description="Leaves per tree.")
    min_data_in_leaf: PositiveInt = Field(default=50, description="Fewest (user, item) rows in a leaf.")
    feature_fraction: float = Field(default=0.9, gt=0.0, le=1.0, description="Share of features each tree sees.")
    lambda_l2: float = Field(default=1.0, ge=0.0, description="L2 penalty on leaf values.")
    truncation_level: PositiveInt = Field(
        default=20, description="LambdaRank's truncation: pairs are weighted for the top this many positions."
    )
    early_stopping_rounds: PositiveInt = Field(
        default=40, description="Rounds without NDCG@10 gain on the held-out users before stopping."
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Share of the validation users held out for early stopping."
    )


class StackedConfig(BaseModel):
    """Candidate families (any leaf family, each with its own hyperparameters), how deep each
    proposes, the content feature, what counts as relevant when the ranker learns, and the ranker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parts: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Candidate families -> their hyperparameters; None takes DEFAULT_PARTS with their "
        "defaults (plus `repeat` when seen_candidates).",
    )
    n_candidates: PositiveInt = Field(default=100, description="Top-N items each part proposes per user.")
    seen_candidates: bool = Field(
        default=False,
        description="The user's seen items are candidates too: set true for repeat consumption (exclude_seen: false).",
    )
    content: bool = Field(
        default=True,
        description="Content similarity of an item to the user's history as a feature (content_tfidf), "
        "where the source has item features.",
    )
    content_config: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters of the content part.")
    relevance_threshold: float | None = Field(
        default=4.0,
        description="Tail ratings at or above are the ranker's relevant positives; None: every tail row (set it "
        "for implicit sources, whose weights are no ratings).",
    )
    graded: bool = Field(
        default=True,
        description="Tail rows below relevance_threshold are weaker positives (label 1, relevant ones 2) "
        "rather than negatives: what a user chose next says something even when they rated it low.",
    )
    boost_from_best_part: bool = Field(
        default=True,
        description="The ranker starts from the standardised score of the part with the best NDCG@10 on its "
        "training data and learns corrections to it, rather than from a constant.",
    )
    valid_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of each user's latest rows held out to fit the ranker when fit() gets no validation part.",
    )
    ranker_tail: float | None = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="The ranker learns on each user's latest share of train + valid (the parts of that stage "
        "fitted on the rest); None: on the validation part fit() gets. 0.2 mirrors P4's test share: a tail of "
        "the test's size teaches the ranker the test's task (with the 10% validation tail it did not transfer).",
    )
    ranker: RankerConfig = Field(default_factory=RankerConfig, description="The second stage.")

    @model_validator(mode="after")
    def _parts_are_families(self) -> Self:
        parts = self.part_configs()
        if not parts:
            raise ValueError("stacked needs at least one candidate part")
        for family, values in parts.items():
            make_leaf_config(family, values)  # an unknown family or key fails here, not after training
        if SEEN_PART in parts and not self.seen_candidates:
            raise ValueError(f"part {SEEN_PART!r} proposes seen items: set seen_candidates: true")
        make_leaf_config(CONTENT_PART, self.content_config)
        return self

    def part_configs(self) -> dict[str, dict[str, Any]]:
        """The candidate families and their hyperparameters, defaults resolved."""
        if self.parts is not None:
            return dict(self.parts)
        names = DEFAULT_PARTS + ((SEEN_PART,) if self.seen_candidates else ())
        return {family: {} for family in names}
