"""How a model is scored: cut-offs, relevance, candidates, intervals and slices, and what each
protocol of PROTOCOLS.md prescribes (`protocol_evaluation_config`)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from recsys_models.datasets.spec import Feedback
from recsys_models.splitting import HELD_OUT_USERS

DEFAULT_CUTOFFS = (5, 10, 20, 50)


ACTIVITY_SLICES = ("cold", "light", "heavy")


POPULARITY_SLICES = ("head", "tail")


SAMPLED_PREFIX = "sampled_"


INTERVAL_METHOD = "percentile bootstrap over users"


COLD_ITEMS_PREFIX = "cold_items_"


COLD_ITEMS_METRICS = ("ndcg", "recall", "hit_rate")


COLD_ITEMS_CANDIDATES = "cold items only: every test item absent from train that has features"


class EvaluationConfig(BaseModel):
    """How a model is scored; the protocol fixes `relevance_threshold` (see `protocol_evaluation_config`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: PositiveInt = Field(default=10, description="Headline cut-off; slices are reported at it.")
    cutoffs: tuple[PositiveInt, ...] = Field(default=DEFAULT_CUTOFFS, description="Every cut-off reported.")
    relevance_threshold: float | None = Field(
        default=4.0, description="Test ratings at or above are relevant; None makes every test row relevant."
    )
    exclude_seen: bool = Field(
        default=True, description="False (repeat consumption): a user's training items stay candidates."
    )
    rating_metrics: bool = Field(default=True, description="False for implicit feedback: no RMSE without ratings.")
    n_negatives: PositiveInt | None = Field(
        default=None, description="Rank among this many sampled unseen items per user instead of all of them."
    )
    n_bootstrap: PositiveInt = Field(default=1000, description="Bootstrap resamples of users per interval.")
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0, description="Coverage of the intervals.")
    seed: NonNegativeInt = Field(default=0, description="Seed of the bootstrap and of negative sampling.")
    batch_size: PositiveInt = Field(default=2048, description="Users scored per batch.")
    activity_thresholds: tuple[PositiveInt, PositiveInt] = Field(
        default=(20, 100),  # MovieLens keeps users with >= 20 ratings: "cold" = at most that many in train
        description="Training interactions per user: cold <= first, light <= second, heavy above.",
    )
    head_share: float = Field(default=0.2, gt=0.0, lt=1.0, description="Share of items (by train count) in the head.")

    @model_validator(mode="after")
    def _thresholds_increase(self) -> "EvaluationConfig":
        if self.activity_thresholds[0] >= self.activity_thresholds[1]:
            raise ValueError(f"activity_thresholds must increase, got {self.activity_thresholds}")
        return self

    @property
    def all_cutoffs(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.cutoffs) | {self.k}))

    @property
    def prefix(self) -> str:
        """The label every ranking metric carries: empty for full ranking, `sampled_` otherwise."""
        return SAMPLED_PREFIX if self.n_negatives is not None else ""


def protocol_evaluation_config(
    protocol: str, k: int = 10, feedback: Feedback | None = None, **overrides: Any
) -> EvaluationConfig:
    """The evaluation a protocol of PROTOCOLS.md prescribes for a source's feedback: leave-one-out
    ranks with every test item relevant; the temporal protocols (and rolling backtests) with the
    source's relevance rule (MovieLens: test ratings >= 4). Implicit feedback and held-out users
    (scored from a history, which predicts no rating) have no rating metrics;
    with `exclude_seen: false` training items stay candidates."""
    feedback = feedback or Feedback()
    threshold = None if protocol == "leave-one-out" else feedback.relevance_threshold
    rating_metrics = feedback.kind == "explicit" and protocol != HELD_OUT_USERS  # P5 predicts no rating of a history
    settings = {
        "k": k,
        "relevance_threshold": threshold,
        "exclude_seen": feedback.exclude_seen,
        "rating_metrics": rating_metrics,
    }
    return EvaluationConfig(**(settings | overrides))
