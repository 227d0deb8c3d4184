"""Training: one family on one split, saved as config JSON plus arrays."""

import time
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.aggregation import combine_repeats
from recsys_models.datasets.spec import Feedback
from recsys_models.features import ItemFeatures, build_item_features, tags_until
from recsys_models.io import atomic_write_json, atomic_write_parquet
from recsys_models.interactions import Interactions, known_rows
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class
from stages.ingest import ID_TABLE
from stages.manifest import read_manifest, stage

SERVING_FILE = "serving.json"  # in the model folder: {"exclude_seen": ...}, read by the pyfunc


def split_feedback(split_dir: Path) -> Feedback:
    """The source's feedback semantics, as the split recorded them."""
    return Feedback(**read_manifest(split_dir)["parameters"].get("feedback", {}))


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


def train(
    split_dir: Path,
    out_dir: Path,
    family: str,
    config: dict[str, Any] | None = None,
    seed: int = 42,
    items_dir: Path | None = None,
) -> Path:
    """Fit `family` with `config` (validated; unknown keys fail) and save it under `out_dir/model`.

    Families with `uses_item_features` also get the item features of `items_dir` (the validate
    folder with `items.parquet` and `tags.parquet`), or None when there is none.
    """
    model_class = family_class(family)
    model_config = model_class.config_type(**(config or {}))
    options = TrainingOptions(seed=seed)
    parameters = {"family": family, "config": model_config.model_dump(mode="json"), "seed": seed}
    with stage("train", out_dir, parameters) as record:
        inputs = [split_dir / "train.parquet", split_dir / "valid.parquet"]
        if model_class.uses_item_features and items_dir is not None:
            inputs += [path for path in (items_dir / "items.parquet", items_dir / "tags.parquet") if path.exists()]
        record.record_inputs(inputs)
        train_part, valid_part = load_training_data(split_dir)
        features = load_item_features(items_dir, train_part, valid_part) if model_class.uses_item_features else None
        started = time.perf_counter()
        model = model_class(model_config, options).fit(train_part, valid_part, features)
        record.counts = {
            "fit_seconds": round(time.perf_counter() - started, 3),
            "users": train_part.n_users,
            "items": train_part.n_items,
            "epochs": len(model.history),
        }
        model.save(out_dir / "model")
        # what serving needs beside the model: whether seen items are answers, the text of coded ids
        atomic_write_json(out_dir / "model" / SERVING_FILE, {"exclude_seen": split_feedback(split_dir).exclude_seen})
        if items_dir is not None and (items_dir / f"{ID_TABLE}.parquet").exists():
            atomic_write_parquet(pl.read_parquet(items_dir / f"{ID_TABLE}.parquet"), out_dir / "model" / f"{ID_TABLE}.parquet")
        record.write_json("history", model.history)
    return out_dir
