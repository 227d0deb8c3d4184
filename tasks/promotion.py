"""Champion/challenger promotion in the MLflow registry.

A new version becomes `challenger`. It must first pass the minimum bounds: enough evaluated users,
a gating metric above `min_value`, and (for ranking families, when the run trained it) better than
the popularity baseline of the same run, paired, beyond noise. Then it is compared with the current
champion, both scored on this run's split with the same evaluation code (paired over the users both
were scored on), and the kind of change decides the rule:
- **refresh**: the same recipe (family and configuration: the `recipe` tag) on newer data or code.
  Promoted unless worse than the champion beyond the non-inferiority margin (the lower end of the
  paired 95% interval must stay above -margin x the champion's value), so the served model stays fresh.
- **switch**: another family (the global `recsys` model) or configuration. Promoted only when better
  beyond noise (the interval above zero) and when the comparison has the power to tell: a
  comparison whose minimum detectable effect exceeds the margin is underpowered and never switches.
Either way the guardrails hold: catalogue coverage may not fall, nor the mean popularity of what is
recommended rise, by more than their bounds. The old champion keeps `previous_champion`,
so rolling back is one alias move in the UI. Whatever `champion` points to when the run looks,
including a person's manual change, is what the candidate must beat. The decision and its reason
are tags on the version (`promotion_decision`, `promotion_reason`). A champion judged on another
dataset or protocol is never compared: the candidate stays challenger and the reason says so. A
champion whose saved model cannot be downloaded, loaded or scored (deleted or corrupt files) is no
comparable champion: it is logged, the candidate is judged without it (the baseline floor still holds)
and the reason says why; the gate of every other registered model goes on.
"""

import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import ValidationError

from recsys_models.base import MODEL_FILE
from recsys_models.columns import TIMESTAMP
from recsys_models.evaluation import compare_paired
from recsys_models.exceptions import RecsysError, UnknownFamilyError
from recsys_models.io import atomic_write_parquet
from recsys_models.registry import family_class, load_model
from reporting.console import quiet_registration
from stages.evaluate import evaluate
from stages.layout import EvalDir
from stages.manifest import MANIFEST
from stages.results import PromotionDecision
from stages.train import train
from tasks.promotion_gate import PromotionGate
from tasks.retrying import with_retries
from tasks.workspace import file_lock

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
BASELINE_FAMILY = "popularity"  # the floor every ranking family's champion must beat


class RecipeUnavailable(RecsysError):
    """A champion's recipe that this code cannot fit any more."""


class ChampionUnloadable(RecsysError):
    """A champion whose saved model cannot be downloaded, read, loaded or scored: no comparable champion."""

    def __init__(self, version: str, step: str, cause: str, file: str | None = None) -> None:
        self.version, self.step, self.cause, self.file = version, step, cause, file
        where = f" ({file})" if file else ""
        super().__init__(f"the champion v{version} could not be {step}{where}: {cause}")


# What downloading, reading, loading or scoring a saved champion raises when its files are gone,
# corrupt or unreadable by this code: MLflow, the file system, zip and numpy archives, JSON, missing
# keys, torch and faiss. A bug (TypeError, AttributeError) or running out of memory is not one of them.
CHAMPION_FAILURES = (MlflowException, OSError, EOFError, zipfile.BadZipFile, ValueError, LookupError, RuntimeError)
MAX_CAUSE_CHARS = 300


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the `champion` alias points to now, or None."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


@contextmanager
def champion_failures(version: str, scratch: Path, step: str = "loaded") -> Iterator[None]:
    """Raise a failure of the champion `version` (downloaded into `scratch`) as `ChampionUnloadable`,
    naming the file that is missing or unreadable when there is one."""
    try:
        yield
    except CHAMPION_FAILURES as error:
        raise ChampionUnloadable(version, step, _one_line(error), _culprit(error, scratch)) from error


def _one_line(error: BaseException) -> str:
    """The error's type and message on one line, without the local path an OSError repeats."""
    text = error.strerror if isinstance(error, OSError) and error.strerror and error.filename else str(error)
    text = " ".join(text.split())
    if len(text) > MAX_CAUSE_CHARS:
        text = text[: MAX_CAUSE_CHARS - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _culprit(error: BaseException, scratch: Path) -> str | None:
    """The file `error` names (relative to the champion's download `scratch` when in it), else the first
    file under `scratch` that does not read back, else None."""
    named = getattr(error, "filename", None)
    if isinstance(named, str):
        return str(Path(named).relative_to(scratch)) if Path(named).is_relative_to(scratch) else named
    return next((str(path.relative_to(scratch)) for path in sorted(scratch.rglob("*")) if not _reads_back(path)), None)


def _reads_back(path: Path) -> bool:
    """Whether a saved archive (.npz: every member's checksum) or JSON file reads back; other files pass."""
    try:
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        if path.suffix == ".json":
            json.loads(path.read_text())
    except (OSError, EOFError, zipfile.BadZipFile, ValueError):
        return False
    return True


def download_champion(name: str, version: str, scratch: Path) -> Path:
    """A registered version's saved model folder (the pyfunc keeps it as artifacts/model/), downloaded;
    returns the folder that holds `model/`, the layout a train folder has. Raises `ChampionUnloadable`."""
    uri = f"models:/{name}/{version}"
    with champion_failures(version, scratch):
        local = Path(with_retries(mlflow.artifacts.download_artifacts, artifact_uri=uri, dst_path=str(scratch)))
    return local / "artifacts"


def score_champion(name: str, version: str, split_dir: Path, out_dir: Path, items_dir: Path | None = None) -> Path:
    """The champion's **recipe** (its family and configuration, read from its saved model) trained on
    this run's training part with this run's code and judged on this run's test part, like the
    candidate: neither side has seen a test row. Raises `RecipeUnavailable` when the recipe cannot
    be fitted any more (its family is gone or its configuration is no longer valid), and
    `ChampionUnloadable` when the saved champion cannot be downloaded or loaded (the model that
    serves must load, though only its recipe is re-fit) or its recipe cannot be scored."""
    with tempfile.TemporaryDirectory() as scratch:
        saved = download_champion(name, version, Path(scratch)) / "model"
        with champion_failures(version, Path(scratch)):
            meta = json.loads((saved / MODEL_FILE).read_text())
            family, config, seed = meta["family"], meta["config"], meta["options"]["seed"]
            _check_fittable(family, config)
            load_model(saved)
        with champion_failures(version, Path(scratch), "scored"):
            trained = train(
                split_dir, Path(scratch) / "train", family, config, seed, items_dir
            )  # scratch: only its figures are kept
            return evaluate(split_dir, trained, out_dir / "evaluate", items_dir=items_dir)


def _check_fittable(family: str, config: dict[str, Any]) -> None:
    """Raise `RecipeUnavailable` when this code has no `family` any more or rejects its `config`."""
    try:
        family_class(family).config_type(**config)
    except (UnknownFamilyError, ValidationError) as error:
        raise RecipeUnavailable(f"the champion's recipe ({family}) cannot be fitted with this code: {error}") from error


def score_on_newer_rows(
    name: str,
    version: str,
    candidate_train_dir: Path,
    split_dir: Path,
    out_dir: Path,
    data_end: int,
    items_dir: Path | None = None,
) -> tuple[Path, Path]:
    """The fallback when the champion's recipe cannot be re-fitted fairly: the served champion and the
    candidate's evaluated model, both judged only on test rows newer than the champion's data
    (`data_end`, Unix seconds), which neither has seen. Returns (candidate, champion) evaluation folders;
    raises `ChampionUnloadable` when the champion cannot be downloaded, loaded or scored."""
    newer = out_dir / "split"
    newer.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid"):
        shutil.copy2(split_dir / f"{part}.parquet", newer / f"{part}.parquet")
    test = pl.read_parquet(split_dir / "test.parquet")
    atomic_write_parquet(test.filter(pl.col(TIMESTAMP) > data_end), newer / "test.parquet")
    shutil.copy2(split_dir / MANIFEST, newer / MANIFEST)
    with tempfile.TemporaryDirectory() as scratch:
        saved = download_champion(name, version, Path(scratch))
        with champion_failures(version, Path(scratch)):
            load_model(saved / "model")
        with champion_failures(version, Path(scratch), "scored"):
            champion = evaluate(newer, saved, out_dir / "champion", items_dir=items_dir)
    return evaluate(newer, candidate_train_dir, out_dir / "candidate", items_dir=items_dir), champion


def decide(
    candidate: dict[str, Any],
    candidate_per_user: pl.DataFrame,
    champion_per_user: pl.DataFrame | None,
    gate: PromotionGate,
    kind: str = "switch",
    baseline_per_user: pl.DataFrame | None = None,
    champion: dict[str, Any] | None = None,
    without_champion: str | None = None,
    compared_per_user: pl.DataFrame | None = None,
) -> tuple[bool, str, dict[str, Any] | None]:
    """The gate's decision from the candidate's metrics and per-user values, the champion's (scored
    fairly, see `judge_champion`) and the run's popularity baseline's; `kind` is "refresh" or "switch".
    `without_champion` is the reason when there is no champion to compare with (default: a first
    version); `compared_per_user`, the candidate's values on the rows the champion was judged on,
    when those are not its own evaluation's."""
    value, users = candidate.get(gate.metric), candidate.get("n_eval_users", 0)
    if value is None or users < gate.min_users or not value > gate.min_value:
        return (
            False,
            f"below the minimum quality: {gate.metric}={value} on {users} users (needs > {gate.min_value} on >= {gate.min_users})",
            None,
        )
    if baseline_per_user is not None:
        floor = compare_paired(candidate_per_user, baseline_per_user, gate.metric)
        if not (floor.n_users and floor.ci_low > 0):
            return (
                False,
                (f"not above the popularity baseline of this run beyond noise: {gate.metric} {_described(floor)}"),
                asdict(floor),
            )
    if champion_per_user is None:
        return (
            True,
            f"{without_champion or 'first version to pass the gate'} ({gate.metric}={value:.4f} on {users} users)",
            None,
        )
    comparison = compare_paired(
        compared_per_user if compared_per_user is not None else candidate_per_user, champion_per_user, gate.metric
    )
    margin = gate.margin(comparison.mean_b)
    underpowered = not comparison.minimum_detectable_effect <= margin
    figures = asdict(comparison) | {"kind": kind, "margin": margin, "underpowered": underpowered}
    summary = f"{gate.metric} {comparison.mean_a:.4f} vs champion {comparison.mean_b:.4f}, {_described(comparison)}"
    power = f"; minimum detectable effect {comparison.minimum_detectable_effect:.4f} vs margin {margin:.4f}" + (
        " (underpowered)" if underpowered else ""
    )
    guardrail = _guardrail_breach(candidate, champion or {}, gate)
    if guardrail is not None:
        return False, f"{kind}: {guardrail}; {summary}{power}", figures
    if kind == "refresh":
        if comparison.n_users and comparison.ci_low > -margin:
            return True, f"refresh: not worse than the champion beyond the margin: {summary}{power}", figures
        return False, f"refresh held back: worse than the champion beyond the margin: {summary}{power}", figures
    if underpowered:
        return False, f"switch not allowed: the comparison is underpowered: {summary}{power}", figures
    if comparison.n_users and comparison.ci_low > 0:
        return True, f"switch: beats the champion beyond noise: {summary}{power}", figures
    return False, f"switch: not better than the champion beyond noise: {summary}{power}", figures


def _described(comparison: Any) -> str:
    return (
        f"difference {comparison.difference:+.4f} [{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}] on "
        f"{comparison.n_users} shared users"
    )


GUARDRAILS = ("coverage_at_10", "avg_popularity_at_10")


def _guardrail_breach(candidate: dict[str, Any], champion: dict[str, Any], gate: PromotionGate) -> str | None:
    """Why the candidate breaks a guardrail against the champion's figures on this split, or None."""
    coverage, old_coverage = candidate.get(GUARDRAILS[0]), champion.get(GUARDRAILS[0])
    if coverage is not None and old_coverage and coverage < old_coverage * (1 - gate.max_coverage_drop):
        return f"guardrail: coverage@10 falls from {old_coverage:.4f} to {coverage:.4f} (bound -{gate.max_coverage_drop:.0%})"
    popularity, old_popularity = candidate.get(GUARDRAILS[1]), champion.get(GUARDRAILS[1])
    if popularity is not None and old_popularity and popularity > old_popularity * (1 + gate.max_popularity_rise):
        return (
            f"guardrail: mean recommended popularity rises from {old_popularity:.1f} to {popularity:.1f} "
            f"(bound +{gate.max_popularity_rise:.0%})"
        )
    return None


COMPARABLE_TAGS = ("dataset", "protocol")
DATA_END_TAG = "data_end"  # the newest interaction (Unix seconds) the served model was fitted on
RECIPE_TAG = "recipe"  # family + configuration (tasks/tracking.py): the same recipe on new data is a refresh


def change_kind(client: MlflowClient, name: str, version: str, champion: str) -> str:
    """ "refresh" when both versions carry the same recipe tag, else "switch" (unknown counts as switch)."""
    recipes = [client.get_model_version(name, v).tags.get(RECIPE_TAG) for v in (version, champion)]
    return "refresh" if recipes[0] is not None and recipes[0] == recipes[1] else "switch"


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
    client: MlflowClient,
    name: str,
    version: str,
    eval_dir: Path,
    split_dir: Path,
    work_dir: Path,
    gate: PromotionGate,
    lock_file: Path,
    baseline_dir: Path | None = None,
    items_dir: Path | None = None,
    candidate_train_dir: Path | None = None,
) -> PromotionDecision:
    """Mark `version` challenger, judge it against the champion, move aliases, record the reason.

    `eval_dir` judged the candidate's recipe trained on `split_dir`'s training part
    (`candidate_train_dir`); `baseline_dir` is the run's popularity evaluation when the candidate must
    beat it; `items_dir` the validate folder (item features for a re-fit)."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    candidate = EvalDir(eval_dir).metrics()
    candidate_per_user = EvalDir(eval_dir).per_user()
    baseline = EvalDir(baseline_dir).per_user() if gate.beat_baseline and baseline_dir else None
    with file_lock(lock_file):  # alias changes of concurrent runs, one at a time (no registry transactions)
        before = champion_version(client, name)
        judged = Judged()
        challenged = before if before is not None and before != version else None  # a champion to beat
        mismatch = context_mismatch(client, name, version, challenged) if challenged is not None else None
        if challenged is not None and mismatch is None:
            judged = judge_champion(
                client,
                name,
                version,
                challenged,
                split_dir,
                work_dir / f"{name}-v{before}",
                items_dir,
                candidate_train_dir,
            )
        if mismatch is not None:
            promoted, reason, comparison = False, mismatch, None
        else:
            promoted, reason, comparison = decide(
                candidate,
                candidate_per_user,
                judged.champion_per_user,
                gate,
                judged.kind,
                baseline,
                judged.champion,
                judged.without_champion,
                judged.candidate_per_user,
            )
            if judged.basis:
                reason += f" ({judged.basis})"
        if promoted:
            if before is not None:
                client.set_registered_model_alias(name, PREVIOUS, before)
            client.set_registered_model_alias(name, CHAMPION, version)
    tags = {"promotion_decision": "promoted" if promoted else "kept_champion", "promotion_reason": reason}
    if comparison is not None:
        tags |= {
            "promotion_kind": str(comparison.get("kind", "baseline")),
            "minimum_detectable_effect": f"{comparison['minimum_detectable_effect']:.4f}",
            "underpowered": str(comparison.get("underpowered", "")),
        }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    logger.info("%s v%s: %s", name, version, reason)
    return PromotionDecision(
        registered_model=name,
        version=version,
        promoted=promoted,
        reason=reason,
        champion_before=before,
        comparison=comparison,
        kind=judged.kind if before != version else None,
    )


@dataclass(frozen=True)
class Judged:
    """How the champion was judged against a candidate: its per-user values and figures on the
    compared rows (None when there is nothing fair to compare), the candidate's values on the same
    rows when they differ from its own evaluation, the kind of change, and the basis in words."""

    kind: str = "switch"
    champion_per_user: pl.DataFrame | None = None
    champion: dict[str, Any] | None = None
    candidate_per_user: pl.DataFrame | None = None
    without_champion: str | None = None
    basis: str | None = None


def judge_champion(
    client: MlflowClient,
    name: str,
    version: str,
    champion: str,
    split_dir: Path,
    work_dir: Path,
    items_dir: Path | None,
    candidate_train_dir: Path | None,
) -> Judged:
    """The fair comparison with the champion (README, "Promotion"): no side is ever judged on a row it
    was trained on. The same recipe and code: the champion's recipe on this split is the candidate
    itself. Otherwise the champion's recipe is re-fit on this split; where it cannot be (another code
    version of the same recipe, or a recipe this code cannot fit), both are judged on the test rows
    newer than the champion's data. A champion that cannot be downloaded, loaded or scored is logged
    and is no comparable champion: the candidate is judged without it, and the basis says why."""
    kind = change_kind(client, name, version, champion)
    tags = {v: client.get_model_version(name, v).tags for v in (version, champion)}
    same_code = tags[version].get("code_version") == tags[champion].get("code_version")
    if kind == "refresh" and same_code:
        return Judged(kind, without_champion="refresh: the same recipe and code on this run's data")
    try:
        return _scored_with_champion(
            name, version, champion, kind, tags, split_dir, work_dir, items_dir, candidate_train_dir
        )
    except ChampionUnloadable as error:
        logger.warning("%s: %s; judging v%s without it", name, error, version)
        return Judged(kind, without_champion=f"{kind}: no comparable champion", basis=str(error))


def _scored_with_champion(
    name: str,
    version: str,
    champion: str,
    kind: str,
    tags: dict[str, dict[str, str]],
    split_dir: Path,
    work_dir: Path,
    items_dir: Path | None,
    candidate_train_dir: Path | None,
) -> Judged:
    """`judge_champion` past a refresh with the same code (`tags` by version): the champion's recipe
    re-fit, else both judged on the newer rows, else nothing fair to compare. Raises `ChampionUnloadable`."""
    try:
        if kind == "refresh":
            raise RecipeUnavailable(
                f"the code changed ({tags[champion].get('code_version')} -> "
                f"{tags[version].get('code_version')}): the old recipe cannot be re-run"
            )
        champion_dir = score_champion(name, champion, split_dir, work_dir, items_dir=items_dir)
        basis = "the champion's recipe re-fit on this run's split"
        candidate_per_user = None
    except RecipeUnavailable as why:
        data_end = tags[champion].get(DATA_END_TAG)
        if data_end is None or candidate_train_dir is None:
            return Judged(kind, without_champion=f"{kind}: no fair comparison with the champion v{champion} ({why})")
        candidate_dir, champion_dir = score_on_newer_rows(
            name, champion, candidate_train_dir, split_dir, work_dir / "newer", int(data_end), items_dir
        )
        basis = f"{why}; both judged on the test rows newer than the champion's data"
        candidate_per_user = EvalDir(candidate_dir).per_user()
    champion_evaluation = EvalDir(champion_dir)
    return Judged(kind, champion_evaluation.per_user(), champion_evaluation.metrics(), candidate_per_user, basis=basis)


GLOBAL_MODEL = "recsys"


def promote_global(
    client: MlflowClient,
    candidates: dict[str, tuple[str, str, Path, Path]],
    split_dir: Path,
    work_dir: Path,
    gate: PromotionGate,
    lock_file: Path,
    baseline_dir: Path | None = None,
    unchanged: set[str] | None = None,
    items_dir: Path | None = None,
) -> PromotionDecision | None:
    """Register this run's best family (by the gating metric) as a version of `recsys` and gate it.

    `candidates` maps family -> (registered model name, version, evaluation folder, the folder of the
    recipe that evaluation judged); `unchanged`
    names the families whose version this run did not register anew (nothing changed): when the
    best is one of them and `recsys` already holds its version, nothing is registered either.
    """
    figures = {
        family: EvalDir(eval_dir).metrics().get(gate.metric) for family, (_, _, eval_dir, _) in candidates.items()
    }
    scored = {family: value for family, value in figures.items() if value is not None and value == value}
    if not scored:
        return None
    best = max(scored, key=scored.__getitem__)
    name, version, eval_dir, evaluated_dir = candidates[best]
    if best in (unchanged or set()):
        for existing in client.search_model_versions(f"name='{GLOBAL_MODEL}'"):
            if existing.tags.get("family_version") == f"{name}/{version}":
                reason = f"unchanged: v{existing.version} already serves {name}/{version}"
                return PromotionDecision(
                    registered_model=GLOBAL_MODEL,
                    version=str(existing.version),
                    promoted=False,
                    reason=reason,
                    champion_before=champion_version(client, GLOBAL_MODEL),
                    comparison=None,  # given, not defaulted: a summary writes every field a decision was given
                    kind=None,
                )
    source = client.get_model_version(name, version).source
    with quiet_registration():
        global_version = str(with_retries(mlflow.register_model, source, GLOBAL_MODEL).version)
    family_tags = client.get_model_version(name, version).tags
    tags = {
        key: family_tags[key]
        for key in (*COMPARABLE_TAGS, RECIPE_TAG, "code_version", DATA_END_TAG)
        if key in family_tags
    }
    for key, value in (tags | {"family": best, "family_version": f"{name}/{version}"}).items():
        client.set_model_version_tag(GLOBAL_MODEL, global_version, key, value)
    baseline = baseline_dir if best != BASELINE_FAMILY else None
    return promote(
        client,
        GLOBAL_MODEL,
        global_version,
        eval_dir,
        split_dir,
        work_dir,
        gate,
        lock_file,
        baseline,
        items_dir,
        evaluated_dir,
    )
