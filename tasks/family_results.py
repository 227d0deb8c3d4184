"""Waiting on each family's stage futures in a flow: which failed (with the first failing stage's
error, not the "upstream failed" of the stages after it) and, for the others, their folders linked
into the run's folder."""

import logging
from collections.abc import Sequence
from pathlib import Path

from prefect.futures import PrefectFuture

from tasks.stage_store import local
from tasks.workspace import link_stage

logger = logging.getLogger(__name__)


def first_failure(futures: Sequence[PrefectFuture]) -> str | None:
    """The error of the first of `futures` (stages in order) that did not complete; None when all did."""
    for future in futures:
        future.wait()
    state = next((future.state for future in futures if not future.state.is_completed()), None)
    return None if state is None else str(state.message or state.name)


def gather_families(stages: dict[str, list[tuple[PrefectFuture, Path]]]) -> dict[str, str]:
    """Wait on each family's stages (future, run folder), in order; link every stage of a family that
    succeeded into its run folder (fetched first when a worker wrote it); the failed families' errors."""
    failures: dict[str, str] = {}
    for family, family_stages in stages.items():
        error = first_failure([future for future, _ in family_stages])
        if error is not None:
            failures[family] = error
            logger.error("family %s failed: %s", family, error)
            continue
        for future, folder in family_stages:
            link_stage(local(future.result()), folder)
    return failures
