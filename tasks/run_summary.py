"""A retrain run's summary (`summary.json`, what the flow returns): counts, each family's metrics and
registration, what was skipped, failed or reused; and the final state of a run some families failed."""

from typing import Any

from prefect.states import Completed, State

from recsys_models.datasets.sources import SourceIdentity
from stages.layout import RunDir
from stages.manifest import read_manifest
from stages.results import FamilyOutcome, MlflowRun, PromotionDecision, RunSummary

PARTLY_FAILED = "Partly failed"


def build_summary(
    run: RunDir,
    run_id: str,
    config: dict[str, Any],
    source: SourceIdentity,
    protocol: str,
    registered: dict[str, PromotionDecision],
    overall: PromotionDecision | None,
    mlflow: MlflowRun,
    failures: dict[str, str],
    skipped: dict[str, str],
) -> RunSummary:
    """What a person wants at the end of a run: counts, each family's metrics and registration, where
    things are; `publish_run_report` adds the report."""
    families = {
        family: FamilyOutcome(metrics=run.evaluation(family).metrics(), registration=decision)
        for family, decision in registered.items()
    }
    return RunSummary(
        run_id=run_id,
        run_dir=str(run.path),
        config=config,
        validation=read_manifest(run.validate)["counts"],
        split=read_manifest(run.split)["counts"],
        families=families,
        failed=failures,
        dataset_name=source.name,
        feedback=source.feedback.model_dump(mode="json"),
        skipped=skipped,
        protocol=protocol,
        reused=reused_stages(run),
        overall=overall,
        mlflow=mlflow,
    )


def reused_stages(run: RunDir) -> dict[str, str]:
    """Stage folders of this run that are links to an earlier run's (cache hits), by stage."""
    folders = [run.ingest, run.validate, run.split, run.serve_split, *run.family_folders()]
    return {
        str(folder.relative_to(run.path)): str(folder.resolve()) for folder in sorted(folders) if folder.is_symlink()
    }


def partly_failed(summary: RunSummary) -> State[RunSummary]:
    """The final state of a run where some families failed: completed (the summary is its result),
    named "Partly failed", its message listing each failed family with its error."""
    listed = "; ".join(f"{family}: {error}" for family, error in summary.failed.items())
    return Completed(name=PARTLY_FAILED, message=f"{len(summary.failed)} family(ies) failed: {listed}", data=summary)
