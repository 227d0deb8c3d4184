"""Prefect tasks of a hyperparameter search: one trial, a thin wrapper over `stages.tune`, that reports
each epoch's validation figure to the trial so the study's pruner can stop a poor trial early; and
the best recipe judged once on the test part."""

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from recsys_models.progress import listening_to_epochs
from stages.layout import EvalDir, RunDir
from stages.tune import Objective, TrialResult, validation_objective
from tasks.pruning import TrialPruned, pruning_listener
from tasks.stage_store import local
from tasks.stage_tasks import cached, evaluate_task, train_task
from tasks.workspace import Workspace, link_stage


@task(name="trial", task_run_name="trial-{number}-{family}", cache_policy=NO_CACHE)  # a trial object has no hash
def trial_task(
    split_dir: Path,
    family: str,
    config: dict[str, Any],
    seed: int,
    number: int,
    items_dir: Path | None = None,
    torch_threads: int | None = None,
    trial: optuna.Trial | None = None,
    objective: Objective = "valid_ndcg_at_10",
) -> TrialResult:
    """Trial `number`: `config` fitted on the split's train part, measured on its valid part; with
    `trial`, pruned when its per-epoch validation figure falls behind (the study's pruner)."""
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    pruning = listening_to_epochs(pruning_listener(trial, objective)) if trial is not None else nullcontext()
    started = time.perf_counter()
    try:
        with pruning:
            return validation_objective(local(split_dir), family, config, seed, local(items_dir))
    except TrialPruned as pruned:
        return TrialResult(pruned.value, round(time.perf_counter() - started, 3), pruned.epoch, pruned=True)


def judge_on_test(
    family: str,
    recipe: dict[str, Any],
    seed: int,
    k: int,
    workspace: Workspace,
    run: RunDir,
    split_dir: Path,
    validated_dir: Path,
    threads: int | None,
    refresh: bool,
) -> dict[str, Any]:
    """The test part, once: the best recipe trained as retrain trains it, then the evaluate stage's metrics."""
    train, evaluate = (cached(stage, workspace.cache, refresh) for stage in (train_task, evaluate_task))
    train_dir, eval_dir = run.train(family), run.evaluate(family)
    trained = link_stage(local(train(split_dir, train_dir, family, recipe, seed, validated_dir, threads)), train_dir)
    evaluated = link_stage(local(evaluate(split_dir, trained, eval_dir, family, k, validated_dir)), eval_dir)
    return EvalDir(evaluated).metrics()
