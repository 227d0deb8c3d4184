"""What a run folder holds, named once: each stage's folder and the files the other modules read.

A retrain run (workspace/runs/<run id>/) holds

    ingest/  validate/  split/  serve_split/    one folder per data stage (each with manifest.json)
    train/<family>/                             the fit that is evaluated (on train + valid)
    evaluate/<family>/                          its figures on the test part: an `EvalDir`
    serve/<family>/                             the same recipe refit on every row: what is registered
    promotion/                                  the gate's re-fits and decisions
    report/                                     the HTML report and its plots
    summary.json                                written last: the run finished

Backtest runs nest train/ and evaluate/ one level deeper, per window (`train(family, window)`). The
stages write their own files by stem (`StageRecord.write_json(METRICS, ...)`); everything that reads
them goes through `RunDir` and `EvalDir`.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

METRICS = "metrics"  # evaluate: headline figures with intervals
PER_USER = "per_user"  # evaluate: one row per evaluated user, the ranking metrics
PER_USER_RATING = "per_user_rating"  # evaluate: one row per user with test ratings, squared and absolute errors
RECOMMENDATIONS = "recommendations"  # evaluate: each user's scored top-k, raw ids
VALIDATION_REPORT = "validation_report"  # validate: the contracts' results per table
DATA_DOCS = "data_docs"  # validate: Great Expectations' Data Docs site (a folder)
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class EvalDir:
    """An evaluate-stage folder (`stages.evaluate.evaluate` writes it)."""

    path: Path

    @property
    def metrics_file(self) -> Path:
        return self.path / f"{METRICS}.json"

    def metrics(self) -> dict[str, Any]:
        """Headline figures: `<metric>_at_<k>`, `_low`/`_high` interval ends, `n_eval_users`, RMSE..."""
        return json.loads(self.metrics_file.read_text())

    def per_user_file(self, rating: bool = False) -> Path:
        return self.path / f"{PER_USER_RATING if rating else PER_USER}.parquet"

    def per_user(self, rating: bool = False) -> pl.DataFrame:
        """Per-user ranking metrics, or with `rating` per-user rating errors (the paired tests' input)."""
        return pl.read_parquet(self.per_user_file(rating))

    @property
    def recommendations_file(self) -> Path:
        return self.path / f"{RECOMMENDATIONS}.parquet"


@dataclass(frozen=True)
class RunDir:
    """A run folder; see the module docstring for its layout."""

    path: Path

    @property
    def ingest(self) -> Path:
        return self.path / "ingest"

    @property
    def validate(self) -> Path:
        return self.path / "validate"

    @property
    def validation_report_file(self) -> Path:
        return self.validate / f"{VALIDATION_REPORT}.json"

    @property
    def data_docs(self) -> Path:
        """Great Expectations' Data Docs site of the run's validation."""
        return self.validate / DATA_DOCS

    @property
    def split(self) -> Path:
        return self.path / "split"

    @property
    def serve_split(self) -> Path:
        return self.path / "serve_split"

    @property
    def promotion(self) -> Path:
        return self.path / "promotion"

    def train(self, family: str, window: str | None = None) -> Path:
        """The evaluated fit of `family` (of a backtest `window`)."""
        return self._per_family("train", family, window)

    def evaluate(self, family: str, window: str | None = None) -> Path:
        """The evaluate-stage folder of `family` (of a backtest `window`); `evaluation` reads it."""
        return self._per_family("evaluate", family, window)

    def evaluation(self, family: str, window: str | None = None) -> EvalDir:
        return EvalDir(self.evaluate(family, window))

    def serve(self, family: str) -> Path:
        """The refit of `family` on every row: the model that is registered."""
        return self.path / "serve" / family

    def family_folders(self) -> list[Path]:
        """Every train/, evaluate/ and serve/ folder of a family present in the run."""
        parents = [self.path / stage for stage in ("train", "evaluate", "serve")]
        return [folder for parent in parents if parent.is_dir() for folder in parent.iterdir()]

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    def finished(self) -> bool:
        """The run wrote its summary (its last act)."""
        return self.summary_file.exists()

    def summary(self) -> dict[str, Any]:
        """summary.json as plain JSON (the file's contract); `stages.results` reads it typed."""
        return json.loads(self.summary_file.read_text())

    def _per_family(self, stage: str, family: str, window: str | None) -> Path:
        return self.path / stage / window / family if window is not None else self.path / stage / family
