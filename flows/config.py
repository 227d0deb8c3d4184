"""The parameter models of the flows (the Prefect UI shows them as a form): `RetrainConfig`,
`BacktestConfig`, `ScoreConfig`, `TuneConfig` and their shared base `PipelineRunConfig`.

They live here, apart from the flows, so that a run configuration (`cli/run_config.py`) is checked
without importing Prefect or MLflow: a bad file is rejected quickly and before anything is written.
"""

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from data_contracts import DEFAULT_MAX_QUARANTINE_SHARE, DriftBounds
from recsys_models.datasets.sources import SourceIdentity
from recsys_models.datasets.spec import ProtocolName
from recsys_models.registry import FAMILIES, default_families, skip_reason
from recsys_models.warm_start import WARM_EPOCHS
from tasks.promotion_gate import PromotionGate
from tasks.retention import DEFAULT_KEEP_RUNS


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
    families: list[str] | None = Field(
        default=None, description="Families to train; None trains all but the opt-in ones (registry.OPT_IN_FAMILIES)."
    )
    seed: int = Field(default=42, ge=0, description="Seed of every model.")
    k: PositiveInt = Field(default=10, description="Headline cut-off of the ranking metrics.")
    max_quarantine_share: float = Field(
        default=DEFAULT_MAX_QUARANTINE_SHARE,
        ge=0.0,
        le=1.0,
        description="Share of bad rows in a table above which the source counts as broken and the run fails.",
    )
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
        return list(self.families or default_families())  # opt-in families only when named

    def applicable_families(self, source: SourceIdentity) -> tuple[list[str], dict[str, str]]:
        """The selected families that apply to the source, and why each other one is skipped."""
        reasons = {
            family: skip_reason(family, source.feedback, source.has_items) for family in self.selected_families()
        }
        skipped = {family: reason for family, reason in reasons.items() if reason is not None}
        return [family for family in reasons if family not in skipped], skipped


class RetrainConfig(PipelineRunConfig):
    """Parameters of a retrain run (the Prefect UI shows them as a form)."""

    protocol: ProtocolName | None = Field(
        default=None,
        description="Split protocol (PROTOCOLS.md): temporal-global = P1/P2, temporal-user = P4, leave-one-out = P3, "
        "held-out-users = P5; "
        "None: the dataset spec's `protocol`, else temporal-user.",
    )
    train_fraction: float = Field(
        default=0.8, gt=0.0, lt=1.0, description="temporal-global: share of rows before the cut-off."
    )
    drift: DriftBounds = Field(default_factory=DriftBounds, description="Drift bounds against the last good run.")
    gate: PromotionGate = Field(default_factory=PromotionGate, description="When a new version becomes champion.")
    keep_runs: PositiveInt | None = Field(
        default=DEFAULT_KEEP_RUNS,
        description="After the run, keep this many newest run folders (plus what aliases and drift need); None keeps all.",
    )


class BacktestConfig(PipelineRunConfig):
    """Parameters of a backtest run (the Prefect UI shows them as a form)."""

    n_windows: PositiveInt = Field(default=4, description="Successive test windows, the last ending at the data's end.")
    window_days: PositiveFloat = Field(default=30.0, description="Length of each test window in days.")
    valid_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Validation tail: the last share of each window's training data."
    )


class RefreshConfig(BaseModel):
    """Parameters of an incremental refresh of the champions (the Prefect UI shows them as a form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(default="ml-latest-small", description="As for retrain: the source, now with its newer rows.")
    families: list[str] | None = Field(
        default=None,
        description="Families whose champion to refresh; None: every family with a champion, and `recsys`.",
    )
    warm_epochs: PositiveInt = Field(
        default=WARM_EPOCHS, description="Most epochs of each warm-started training loop (torch families)."
    )
    register_only: bool = Field(
        default=False, description="Register the refreshed versions without moving `champion` to them."
    )
    max_quarantine_share: float = Field(default=DEFAULT_MAX_QUARANTINE_SHARE, ge=0.0, le=1.0)

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: list[str] | None) -> list[str] | None:
        unknown = sorted(set(families or []) - set(FAMILIES))
        if unknown or families == []:
            raise ValueError("; ".join(describe_unknown(name) for name in unknown) or "no family named")
        return families


class ScoreConfig(BaseModel):
    """Parameters of a batch-scoring run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str = Field(default="recsys", description="Registered model to score with.")
    alias: str = Field(default="champion", description="Alias of the version to use.")
    k: PositiveInt = Field(default=10, description="Recommendations per user.")
    batch_size: PositiveInt = Field(default=5_000, description="Users per Parquet part file.")


class TuneConfig(BaseModel):
    """Parameters of a search (the Prefect UI shows them as a form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str = Field(description="The family to tune; it must declare a search space.")
    dataset: str = Field(default="ml-latest-small", description="As for retrain: a named data set, a spec or a file.")
    protocol: ProtocolName | None = Field(default=None, description="Split protocol, as for retrain.")
    train_fraction: float = Field(default=0.8, gt=0.0, lt=1.0, description="temporal-global: share before the cut-off.")
    trials: PositiveInt = Field(
        default=20, description="Finished trials the study holds at the end (earlier runs' count)."
    )
    timeout: PositiveFloat | None = Field(default=None, description="Seconds after which no new trial starts.")
    seed: int = Field(default=42, ge=0, description="Seed of the sampler and of every model.")
    k: PositiveInt = Field(default=10, description="Cut-off of the best configuration's test metrics.")
    base_config: dict[str, Any] = Field(
        default_factory=dict, description="The configuration trial 0 runs and the others change only inside the space."
    )
    out: str | None = Field(default=None, description="Best-configuration file; None: workspace/tuning/<family>.yaml.")
    max_quarantine_share: float = Field(default=DEFAULT_MAX_QUARANTINE_SHARE, ge=0.0, le=1.0)

    @field_validator("family")
    @classmethod
    def _known_family(cls, family: str) -> str:
        if family not in FAMILIES:
            raise ValueError(describe_unknown(family))
        return family
