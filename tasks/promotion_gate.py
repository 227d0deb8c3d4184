"""The promotion gate's settings: a pure parameter model, kept apart from the registry code in
`tasks/promotion.py` so that a run's configuration is checked without importing MLflow."""

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt


class PromotionGate(BaseModel):
    """When a challenger may replace the champion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(default="ndcg_at_10", description="Gating metric, higher is better, per user.")
    min_value: float = Field(default=0.0, description="The challenger's gating metric must exceed this.")
    min_users: NonNegativeInt = Field(default=10, description="Fewest evaluated users to judge a model on.")
    non_inferiority_margin: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="Refresh: promoted unless worse beyond this share of the champion's value; also the "
        "effect a switch must have the power to detect.",
    )
    beat_baseline: bool = Field(default=True, description="Ranking families must beat the run's popularity.")
    max_coverage_drop: float = Field(default=0.25, ge=0.0, description="Guardrail: coverage may fall by this share.")
    max_popularity_rise: float = Field(
        default=0.25, ge=0.0, description="Guardrail: mean recommended popularity may rise by this share."
    )

    def margin(self, champion_value: float) -> float:
        """The non-inferiority margin in the metric's units."""
        return self.non_inferiority_margin * abs(champion_value)
