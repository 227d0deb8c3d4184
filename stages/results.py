"""What the pipeline flows return and write as a run's `summary.json`: a retrain's `RunSummary` (each
family's `FamilyOutcome` with its `PromotionDecision`) and a `BacktestSummary`. The CLI, the HTML report
and the tests read these types; a summary.json an older version wrote still loads (unknown keys are
ignored, keys added since have defaults). The tune and refresh summaries stay plain dicts."""

import json
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from recsys_models.io import atomic_write_json


class Result(BaseModel):
    """A result read back from disk: immutable, unknown keys ignored, NaN kept as NaN in JSON (metrics
    of a family that evaluated no user)."""

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")


class MlflowRun(Result):
    """The MLflow parent run of a pipeline run, and the store that holds it."""

    run_id: str
    tracking_uri: str


class PromotionDecision(Result):
    """A registered version and what the promotion gate made of it (`tasks/promotion.py`): a family's
    registration (`tasks/registration.py`) or the global model `recsys`'s."""

    run_id: str | None = Field(default=None, description="A family's MLflow child run; absent when unchanged.")
    registered_model: str
    version: str
    promoted: bool | None = Field(description="None: a rerun that changed nothing registered no new version.")
    reason: str
    champion_before: str | None = Field(default=None, description="The champion version when the gate looked.")
    comparison: dict[str, Any] | None = Field(
        default=None, description="The paired comparison's figures (with the baseline or the champion), if any."
    )
    kind: str | None = Field(default=None, description='"refresh" or "switch" when a champion was compared.')


class FamilyOutcome(Result):
    """A family that trained, evaluated and registered in a retrain run."""

    metrics: dict[str, Any] = Field(description="Its metrics.json: figures on the test part, with intervals.")
    registration: PromotionDecision


class StoredSummary(Result):
    """A run's summary: written last in its folder (`write`), read back with `load`."""

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a summary.json (one an older version wrote too)."""
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> Path:
        """Write as indented JSON the fields that were given, so each entry keeps its keys (a family's
        registration has no `champion_before`, an unchanged one no `run_id`)."""
        return atomic_write_json(path, self.model_dump(mode="json", exclude_unset=True))


class RunSummary(StoredSummary):
    """A retrain run: counts, each family's outcome, what was skipped, failed or reused, where things are."""

    run_id: str
    run_dir: str
    config: dict[str, Any] = Field(description="The run's RetrainConfig as JSON.")
    validation: dict[str, Any] = Field(description="The validate stage's counts (rows read, valid, quarantined...).")
    split: dict[str, Any] = Field(description="The split stage's counts.")
    families: dict[str, FamilyOutcome]
    failed: dict[str, str] = Field(description="Each failed family's error.")
    dataset_name: str | None = None
    feedback: dict[str, Any] | None = Field(default=None, description="The dataset's feedback kind, as JSON.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Families that do not apply, and why.")
    protocol: str | None = None
    reused: dict[str, str] = Field(
        default_factory=dict, description="Stage folders linked to an earlier run's (cache hits), by stage."
    )
    overall: PromotionDecision | None = Field(default=None, description="The global model `recsys`'s decision.")
    mlflow: MlflowRun
    report: str | None = Field(default=None, description="The HTML report; None when it could not be written.")

    @property
    def dataset(self) -> str:
        """The dataset's name (a spec's `name`, whatever path it was read from)."""
        return self.dataset_name or str(self.config["dataset"])

    def family_metrics(self) -> dict[str, dict[str, Any]]:
        """Each family's metrics, by family."""
        return {family: outcome.metrics for family, outcome in self.families.items()}


class BacktestFamily(Result):
    """A family of a backtest, scored on at least one window."""

    windows_ok: int = Field(description="Windows the family was scored on.")


class BacktestSummary(StoredSummary):
    """A backtest: where the metric-over-time table and plot are, the families scored (on how many
    windows), each failed window and family with its error, and the few-user notes."""

    run_id: str
    run_dir: str
    config: dict[str, Any] = Field(description="The run's BacktestConfig as JSON.")
    windows: list[dict[str, Any]] = Field(description="The rolling split's windows (cut-offs, counts).")
    table: str = Field(description="The metric-over-time table (Parquet).")
    table_csv: str
    plot: str | None = Field(description="Its PNG; None when matplotlib is not installed.")
    families: dict[str, BacktestFamily]
    failed: dict[str, str] = Field(description='Each failed "window/family" and its error.')
    notes: list[str] = Field(default_factory=list, description="Windows scored on too few users.")
    mlflow: MlflowRun

    @property
    def dataset(self) -> str:
        """The dataset as the run was configured with it."""
        return str(self.config["dataset"])


def load_summary(path: Path) -> RunSummary | BacktestSummary:
    """A run folder's summary.json, typed by its kind (a backtest's names its table)."""
    data = json.loads(path.read_text())
    return BacktestSummary.model_validate(data) if "table" in data else RunSummary.model_validate(data)
