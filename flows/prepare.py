"""ingest -> validate -> split as retrain and tune run them: the cached stage tasks, each folder linked
into the run's folder (and published, with a stage store, for the workers that read it)."""

from pathlib import Path

from data_contracts import DriftBounds
from recsys_models.splitting import SplitSettings
from stages.layout import RunDir
from tasks.stage_store import share
from tasks.stage_tasks import cached, ingest_task, split_task, validate_task
from tasks.workspace import Workspace, data_dir_from_env, last_successful_validation, link_stage


def prepare_split(
    dataset: str, run: RunDir, workspace: Workspace, dataset_name: str, settings: SplitSettings, *, seed: int,
    max_quarantine_share: float, drift: DriftBounds, refresh: bool,
) -> tuple[Path, Path]:  # fmt: skip
    """The validate folder and the split folder of `run`; drift is judged against the last successful
    validation of `dataset_name` before this run."""
    ingest, validate, split = (cached(stage, workspace.cache, refresh) for stage in (ingest_task, validate_task, split_task))
    ingest_dir = share(
        link_stage(ingest(dataset, run.ingest, data_dir_from_env(), workspace.downloads, seed), run.ingest)
    )
    reference = last_successful_validation(workspace, dataset_name, before=run.path.name)
    validated_dir = share(
        link_stage(validate(ingest_dir, run.validate, max_quarantine_share, reference, drift), run.validate)
    )
    split_dir = share(link_stage(split(validated_dir, run.split, settings), run.split))
    return validated_dir, split_dir
