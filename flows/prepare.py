"""ingest -> validate (-> split) as the flows run them: the cached stage tasks, each folder linked into
the run's folder (and published, with a stage store, for the workers that read it)."""

from pathlib import Path

from data_contracts import DriftBounds
from recsys_models.splitting import SplitSettings
from stages.layout import RunDir
from tasks.stage_store import share
from tasks.stage_tasks import cached, ingest_task, split_task, validate_task
from tasks.workspace import Workspace, data_dir_from_env, link_stage


def ingest_and_validate(
    dataset: str,
    run: RunDir,
    workspace: Workspace,
    *,
    seed: int,
    max_quarantine_share: float,
    drift: DriftBounds,
    reference: Path | None,
    refresh: bool,
) -> Path:
    """The validate folder of `run`; drift is judged against `reference` (an earlier validate folder)."""
    ingest, validate = (cached(stage, workspace.cache, refresh) for stage in (ingest_task, validate_task))
    ingest_dir = share(
        link_stage(ingest(dataset, run.ingest, data_dir_from_env(), workspace.downloads, seed), run.ingest)
    )
    return share(link_stage(validate(ingest_dir, run.validate, max_quarantine_share, reference, drift), run.validate))


def prepare_split(
    dataset: str,
    run: RunDir,
    workspace: Workspace,
    settings: SplitSettings,
    *,
    seed: int,
    max_quarantine_share: float,
    drift: DriftBounds,
    reference: Path | None,
    refresh: bool,
) -> tuple[Path, Path]:
    """The validate folder and the split folder of `run`."""
    validated_dir = ingest_and_validate(
        dataset,
        run,
        workspace,
        seed=seed,
        max_quarantine_share=max_quarantine_share,
        drift=drift,
        reference=reference,
        refresh=refresh,
    )
    split = cached(split_task, workspace.cache, refresh)
    return validated_dir, share(link_stage(split(validated_dir, run.split, settings), run.split))
