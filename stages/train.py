"""Training: one family on one split, saved as config JSON plus arrays."""

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.aggregation import combine_repeats
from recsys_models.base import Recommender
from recsys_models.datasets.spec import Feedback
from recsys_models.features import ItemFeatures, build_item_features, tags_until
from recsys_models.interactions import Interactions, known_rows
from recsys_models.io import atomic_write_json, atomic_write_parquet
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, load_model
from recsys_models.training import DIVERGENCE_FACTOR, check_against_baseline, check_finite, check_history
from recsys_models.validation_metrics import constant_rmse, fitted_ndcg, fitted_rmse
from recsys_models.warm_start import WARM_EPOCHS, WarmStart, starting_from
from stages.ingest import ID_TABLE
from stages.manifest import read_manifest, stage

MODEL_DIR = "model"  # the saved model in a train stage folder (what the pyfunc is logged from)
SERVING_FILE = "serving.json"  # in the model folder: {"exclude_seen": ...}, read by the pyfunc


def split_feedback(split_dir: Path) -> Feedback:
    """The source's feedback semantics, as the split recorded them."""
    return Feedback(**read_manifest(split_dir)["parameters"].get("feedback", {}))


@dataclass(frozen=True)
class WarmStartSpec:
    """Where a fit starts from: an earlier saved model (`model_dir`) and the epochs it may run."""

    model_dir: Path
    label: str  # how the manifest names it, e.g. "recsys-sasrec v3"
    max_epochs: int = WARM_EPOCHS

    def between(self, family: str, train: Interactions) -> WarmStart | None:
        """The warm start from the saved model to a fit on `train`'s vocabularies; None when the
        family keeps no trained parameters. The saved model must be of `family`."""
        earlier = load_model(self.model_dir)
        if earlier.family != family:
            raise ValueError(f"cannot start {family} from a {earlier.family} model ({self.label})")
        parameters = earlier.trained_parameters()
        if parameters is None:
            return None
        return WarmStart.between(
            parameters, (earlier.users, earlier.items), (train.users, train.items), self.max_epochs
        )


def load_training_data(split_dir: Path) -> tuple[Interactions, Interactions]:
    """Train and its validation tail, indexed by vocabularies built from the whole training part.

    Validation rows are always known (their users and items are in the vocabulary by construction).
    Where seen items may recur (`exclude_seen: false`) the parts hold a pair's separate events;
    each part combines them here by the source's `repeats` rule, so a family sees one row per pair.
    """
    train = pl.read_parquet(split_dir / "train.parquet")
    valid = pl.read_parquet(split_dir / "valid.parquet")
    feedback = split_feedback(split_dir)
    if not feedback.exclude_seen:
        train, valid = (combine_repeats(part.lazy(), feedback.repeats).collect() for part in (train, valid))
    full = Interactions.from_frame(pl.concat([train, valid]))
    if not known_rows(valid, full.users, full.items).all():
        raise RuntimeError("validation rows outside the training vocabulary")
    return (
        Interactions.from_frame(train, full.users, full.items),
        Interactions.from_frame(valid, full.users, full.items),
    )


def load_item_features(items_dir: Path | None, train: Interactions, valid: Interactions) -> ItemFeatures | None:
    """Features of every catalogue item from `items_dir` (the validate folder), with only the tags
    applied up to the last training timestamp; None when the source has no items table."""
    if items_dir is None or not (items_dir / "items.parquet").exists():
        return None
    tags_path = items_dir / "tags.parquet"
    tags = pl.read_parquet(tags_path) if tags_path.exists() else None
    if tags is not None:
        tags = tags_until(tags, int(max(train.timestamp.max(initial=0), valid.timestamp.max(initial=0))))
    return build_item_features(pl.read_parquet(items_dir / "items.parquet"), tags)


def check_divergence(
    model: Recommender, train: Interactions, valid: Interactions, feedback: Feedback, factor: float
) -> dict[str, float]:
    """Raise `TrainingDiverged` when a fitted model diverged; returns the validation figures checked.

    Every family: no figure of its history is NaN or infinite, and its validation NDCG@10 (its own
    `score`, so closed-form families' fitted arrays count too) is finite. Rating families on
    explicit feedback also face a baseline (`check_rating_divergence`). Ranking gets no such floor
    here: the promotion gate already holds ranking families to popularity on the test part, and
    NDCG on a small validation tail (in-sample for families that train on it) is too noisy for a
    ratio to tell divergence from a weak but sound model.
    """
    check_history(model.family, model.history)
    if len(valid) == 0:
        return {}
    figures = {"valid_ndcg_at_10": fitted_ndcg(model, train, valid, feedback.exclude_seen)}
    check_finite(model.family, figures, "after fitting")
    if model.predicts_ratings and feedback.kind == "explicit":
        figures |= check_rating_divergence(model, train, valid, factor)
    return figures


def check_rating_divergence(
    model: Recommender, train: Interactions, valid: Interactions, factor: float
) -> dict[str, float]:
    """Validation RMSE against `factor` times a trivial predictor's; returns the figures.

    The fitted model's (its `predict`, clipped to the rating range as served) against the global
    mean's. Clipping hides a blown-up model (its predictions sit on the range's ends, about 2.5x the
    global mean's RMSE), so the trainer's own unclipped figure counts too: its best epoch's
    `valid_rmse`, against the larger of the global mean's and the zero prediction's RMSE. The zero
    prediction is where an untrained factor model without biases (mf) starts; its users with no
    training row (many, on a temporal validation tail) stay near it, legitimately about 3.4x the
    global mean's RMSE, while a diverged trainer is orders of magnitude above.
    """
    global_mean = constant_rmse(float(train.rating.mean()), valid)
    figures = {"valid_rmse": fitted_rmse(model, valid), "global_mean_rmse": global_mean}
    check_against_baseline(model.family, "rmse", figures["valid_rmse"], global_mean, "global-mean", factor)
    epochs = [record["valid_rmse"] for record in model.history if "valid_rmse" in record]
    if epochs:
        figures |= {"best_epoch_valid_rmse": min(epochs), "zero_rmse": constant_rmse(0.0, valid)}
        baselines = {"global-mean": global_mean, "zero-prediction": figures["zero_rmse"]}
        name = max(baselines, key=baselines.__getitem__)
        check_against_baseline(model.family, "rmse (best epoch)", min(epochs), baselines[name], name, factor)
    return figures


def train(
    split_dir: Path,
    out_dir: Path,
    family: str,
    config: dict[str, Any] | None = None,
    seed: int = 42,
    items_dir: Path | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    warm_start: WarmStartSpec | None = None,
) -> Path:
    """Fit `family` with `config` (validated; unknown keys fail) and save it under `out_dir/model`.

    Families with `uses_item_features` also get the item features of `items_dir` (the validate
    folder with `items.parquet` and `tags.parquet`), or None when there is none. A diverged fit
    (`check_divergence`, with `divergence_factor` as its baseline factor) raises `TrainingDiverged`
    before anything is saved, so the family fails. With `warm_start` (an earlier saved model of the
    family), a family with trained parameters starts from them (`recsys_models.warm_start`); the
    others fit from scratch, as they would anyway.
    """
    model_class = family_class(family)
    model_config = model_class.config_type(**(config or {}))
    options = TrainingOptions(seed=seed)
    parameters = {"family": family, "config": model_config.model_dump(mode="json"), "seed": seed}
    if warm_start is not None:
        parameters["warm_start"] = {"from": warm_start.label, "max_epochs": warm_start.max_epochs}
    with stage("train", out_dir, parameters) as record:
        inputs = [split_dir / "train.parquet", split_dir / "valid.parquet"]
        if model_class.uses_item_features and items_dir is not None:
            inputs += [path for path in (items_dir / "items.parquet", items_dir / "tags.parquet") if path.exists()]
        record.record_inputs(inputs)
        train_part, valid_part = load_training_data(split_dir)
        features = load_item_features(items_dir, train_part, valid_part) if model_class.uses_item_features else None
        warm = warm_start.between(family, train_part) if warm_start is not None else None
        started = time.perf_counter()
        with starting_from(warm) if warm is not None else nullcontext():
            model = model_class(model_config, options).fit(train_part, valid_part, features)
        fit_seconds = round(time.perf_counter() - started, 3)
        checked = check_divergence(model, train_part, valid_part, split_feedback(split_dir), divergence_factor)
        record.counts = {
            "fit_seconds": fit_seconds,
            "users": train_part.n_users,
            "items": train_part.n_items,
            "epochs": len(model.history),
            "warm_started": warm is not None,
            "divergence_check": checked | {"factor": divergence_factor},
        }
        model.save(out_dir / MODEL_DIR)
        # what serving needs beside the model: whether seen items are answers, the text of coded ids
        atomic_write_json(out_dir / MODEL_DIR / SERVING_FILE, {"exclude_seen": split_feedback(split_dir).exclude_seen})
        if items_dir is not None and (items_dir / f"{ID_TABLE}.parquet").exists():
            atomic_write_parquet(
                pl.read_parquet(items_dir / f"{ID_TABLE}.parquet"), out_dir / MODEL_DIR / f"{ID_TABLE}.parquet"
            )
        record.write_json("history", model.history)
    return out_dir
