"""Training: one family on one split, saved as config JSON plus arrays."""

import time
from pathlib import Path
from typing import Any

import polars as pl

from recsys_models.interactions import Interactions, known_rows
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class
from stages.manifest import stage


def load_training_data(split_dir: Path) -> tuple[Interactions, Interactions]:
    """Train and its validation tail, indexed by vocabularies built from the whole training part.

    Validation rows are always known (their users and items are in the vocabulary by construction).
    """
    train = pl.read_parquet(split_dir / "train.parquet")
    valid = pl.read_parquet(split_dir / "valid.parquet")
    full = Interactions.from_frame(pl.concat([train, valid]))
    if not known_rows(valid, full.users, full.items).all():
        raise RuntimeError("validation rows outside the training vocabulary")
    return (
        Interactions.from_frame(train, full.users, full.items),
        Interactions.from_frame(valid, full.users, full.items),
    )


def train(
    split_dir: Path, out_dir: Path, family: str, config: dict[str, Any] | None = None, seed: int = 42
) -> Path:
    """Fit `family` with `config` (validated; unknown keys fail) and save it under `out_dir/model`."""
    model_class = family_class(family)
    model_config = model_class.config_type(**(config or {}))
    options = TrainingOptions(seed=seed)
    parameters = {"family": family, "config": model_config.model_dump(mode="json"), "seed": seed}
    with stage("train", out_dir, parameters) as record:
        record.record_inputs([split_dir / "train.parquet", split_dir / "valid.parquet"])
        train_part, valid_part = load_training_data(split_dir)
        started = time.perf_counter()
        model = model_class(model_config, options).fit(train_part, valid_part)
        record.counts = {
            "fit_seconds": round(time.perf_counter() - started, 3),
            "users": train_part.n_users,
            "items": train_part.n_items,
            "epochs": len(model.history),
        }
        model.save(out_dir / "model")
        record.write_json("history", model.history)
    return out_dir
