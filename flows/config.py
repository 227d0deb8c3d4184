"""Parameters every pipeline flow takes (the Prefect UI shows them as a form)."""

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from data_contracts import DEFAULT_MAX_QUARANTINE_SHARE
from recsys_models.datasets.sources import SourceIdentity
from recsys_models.registry import FAMILIES, skip_reason


def describe_unknown(family: str) -> str:
    """`unknown family 'eas' (did you mean 'ease'?)`, or the known names when nothing is close."""
    close = difflib.get_close_matches(family, FAMILIES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(FAMILIES))}"
    return f"unknown family {family!r} ({hint})"


class PipelineRunConfig(BaseModel):
    """Data source, families, seed and contract threshold shared by retrain and backtest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(
        default="ml-latest-small",
        description="ml-latest-small, ml-100k, synthetic, a dataset spec (.yaml), or a path to a ratings CSV/Parquet file.",
    )
    families: list[str] | None = Field(default=None, description="Families to train; None trains all.")
    seed: int = Field(default=42, ge=0, description="Seed of every model.")
    k: PositiveInt = Field(default=10, description="Headline cut-off of the ranking metrics.")
    max_quarantine_share: float = Field(
        default=DEFAULT_MAX_QUARANTINE_SHARE, ge=0.0, le=1.0,
        description="Share of bad rows in a table above which the source counts as broken and the run fails.",
    )  # fmt: skip
    family_configs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Hyperparameters per family, validated by the family's config."
    )

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: list[str] | None) -> list[str] | None:
        if families is not None:
            unknown = sorted(set(families) - set(FAMILIES))
            if unknown or not families:
                raise ValueError("; ".join(describe_unknown(name) for name in unknown) or "no family named")
        return families

    def selected_families(self) -> list[str]:
        return list(self.families or FAMILIES)

    def applicable_families(self, source: SourceIdentity) -> tuple[list[str], dict[str, str]]:
        """The selected families that apply to the source, and why each other one is skipped."""
        reasons = {family: skip_reason(family, source.feedback, source.has_items) for family in self.selected_families()}
        skipped = {family: reason for family, reason in reasons.items() if reason is not None}
        return [family for family in reasons if family not in skipped], skipped
