"""Champion/challenger promotion in the MLflow registry.

A new version becomes `challenger`. It is promoted to `champion` only when it passes the minimum
quality bounds and beats the current champion beyond noise: both are scored on this run's split
with the same evaluation code, and the paired difference of the gating metric over the users both
were scored on must have a 95% interval above zero. The old champion keeps `previous_champion`,
so rolling back is one alias move in the UI. Whatever `champion` points to when the run looks,
including a person's manual change, is what the candidate must beat. The decision and its reason
are tags on the version (`promotion_decision`, `promotion_reason`). A champion judged on another
dataset or protocol is never compared: the candidate stays challenger and the reason says so.
"""

import fcntl
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from recsys_models.evaluation import compare_paired
from stages.evaluate import evaluate
from tasks.retrying import with_retries

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"


class PromotionGate(BaseModel):
    """When a challenger may replace the champion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(default="ndcg_at_10", description="Gating metric, higher is better, per user.")
    min_value: float = Field(default=0.0, description="The challenger's gating metric must exceed this.")
    min_users: NonNegativeInt = Field(default=10, description="Fewest evaluated users to judge a model on.")


@dataclass(frozen=True)
class Decision:
    registered_model: str
    version: str
    promoted: bool
    reason: str
    champion_before: str | None
    comparison: dict[str, Any] | None = None


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the `champion` alias points to now, or None."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


@contextmanager
def promotion_lock(lock_file: Path) -> Iterator[None]:
    """Serialise alias changes of concurrent runs on this machine (the registry has no transactions)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def score_champion(name: str, version: str, split_dir: Path, out_dir: Path) -> Path:
    """Evaluate a registered version's model on this run's split; return its evaluation folder."""
    with tempfile.TemporaryDirectory() as scratch:
        uri = f"models:/{name}/{version}"
        local = Path(with_retries(mlflow.artifacts.download_artifacts, artifact_uri=uri, dst_path=scratch))
        # the pyfunc keeps the saved model under artifacts/model/, the layout a train folder has
        return evaluate(split_dir, local / "artifacts", out_dir)


def decide(
    candidate: dict[str, Any], candidate_per_user: pl.DataFrame, champion_per_user: pl.DataFrame | None,
    gate: PromotionGate,
) -> tuple[bool, str, dict[str, Any] | None]:
    """The gate's decision from the candidate's metrics and both models' per-user values."""
    value, users = candidate.get(gate.metric), candidate.get("n_eval_users", 0)
    if value is None or users < gate.min_users or not value > gate.min_value:
        return False, f"below the minimum quality: {gate.metric}={value} on {users} users (needs > {gate.min_value} on >= {gate.min_users})", None
    if champion_per_user is None:
        return True, f"first version to pass the gate ({gate.metric}={value:.4f} on {users} users)", None
    comparison = compare_paired(candidate_per_user, champion_per_user, gate.metric)
    figures = asdict(comparison)
    summary = (
        f"{gate.metric} {comparison.mean_a:.4f} vs champion {comparison.mean_b:.4f} on {comparison.n_users} "
        f"shared users, difference {comparison.difference:+.4f} [{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]"
    )
    if comparison.n_users and comparison.ci_low > 0:
        return True, f"beats the champion beyond noise: {summary}", figures
    return False, f"not better than the champion beyond noise: {summary}", figures


COMPARABLE_TAGS = ("dataset", "protocol")


def context_mismatch(client: MlflowClient, name: str, version: str, champion: str) -> str | None:
    """Why two versions cannot be compared (another dataset or protocol), or None when they can."""
    tags = {v: client.get_model_version(name, v).tags for v in (version, champion)}
    differing = [key for key in COMPARABLE_TAGS if tags[version].get(key) != tags[champion].get(key)]
    if not differing:
        return None
    described = ", ".join(f"{key} {tags[champion].get(key)!r} vs {tags[version].get(key)!r}" for key in differing)
    return (
        f"not compared: the champion v{champion} was judged on another {'/'.join(differing)} ({described}); "
        "promote by hand if this version should serve"
    )


def promote(
    client: MlflowClient, name: str, version: str, eval_dir: Path, split_dir: Path, work_dir: Path,
    gate: PromotionGate, lock_file: Path,
) -> Decision:
    """Mark `version` challenger, judge it against the champion, move aliases, record the reason."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    candidate = json.loads((eval_dir / "metrics.json").read_text())
    candidate_per_user = pl.read_parquet(eval_dir / "per_user.parquet")
    with promotion_lock(lock_file):
        before = champion_version(client, name)
        champion_per_user, mismatch = None, None
        if before is not None and before != version:
            mismatch = context_mismatch(client, name, version, before)
            if mismatch is None:
                champion_dir = score_champion(name, before, split_dir, work_dir / f"{name}-v{before}")
                champion_per_user = pl.read_parquet(champion_dir / "per_user.parquet")
        if mismatch is not None:
            promoted, reason, comparison = False, mismatch, None
        else:
            promoted, reason, comparison = decide(candidate, candidate_per_user, champion_per_user, gate)
        if promoted:
            if before is not None:
                client.set_registered_model_alias(name, PREVIOUS, before)
            client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion_decision", "promoted" if promoted else "kept_champion")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    logger.info("%s v%s: %s", name, version, reason)
    return Decision(name, version, promoted, reason, before, comparison)


GLOBAL_MODEL = "recsys"


def promote_global(
    client: MlflowClient, candidates: dict[str, tuple[str, str, Path]], split_dir: Path, work_dir: Path,
    gate: PromotionGate, lock_file: Path,
) -> Decision | None:
    """Register this run's best family (by the gating metric) as a version of `recsys` and gate it.

    `candidates` maps family -> (registered model name, version, evaluation folder).
    """
    scored = {
        family: json.loads((eval_dir / "metrics.json").read_text()).get(gate.metric)
        for family, (_, _, eval_dir) in candidates.items()
    }
    scored = {family: value for family, value in scored.items() if value is not None and value == value}
    if not scored:
        return None
    best = max(scored, key=scored.__getitem__)
    name, version, eval_dir = candidates[best]
    source = client.get_model_version(name, version).source
    global_version = str(with_retries(mlflow.register_model, source, GLOBAL_MODEL).version)
    family_tags = client.get_model_version(name, version).tags
    tags = {key: family_tags[key] for key in COMPARABLE_TAGS if key in family_tags}
    for key, value in (tags | {"family": best, "family_version": f"{name}/{version}"}).items():
        client.set_model_version_tag(GLOBAL_MODEL, global_version, key, value)
    return promote(client, GLOBAL_MODEL, global_version, eval_dir, split_dir, work_dir, gate, lock_file)
