"""Refresh against full retrain: how far a warm-started refresh is from a retrain on the same data,
and how much faster it is.

    .venv/bin/python -m benchmarks.refresh --dataset ml-100k --families biased_mf,sasrec

P4 split of the dataset (the library's `protocol_split`). The earlier model is the family fitted on
the training rows older than the newest `--newest` share (default 5%) of the training data, as last
night's champion would be; then the newest rows arrive. Full retrain: the family fitted from
scratch on every training row. Refresh: the same fit started from the earlier model's parameters
(`recsys_models.warm_start`, at most WARM_EPOCHS epochs per training loop). All three are judged on
the same test part (NDCG@10, 95% bootstrap over users); refresh minus retrain is paired on the same
users. Fit times are wall seconds with `--threads` torch threads. Writes
benchmarks/results/refresh_<dataset>.json.
"""

import argparse
import json
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import torch

from benchmarks.protocol_quality import contract_valid, load_source, protocol_parts
from recsys_models.base import Recommender
from recsys_models.evaluation import compare_paired, evaluate_model, protocol_evaluation_config
from recsys_models.features import build_item_features, tags_until
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config
from recsys_models.warm_start import WARM_EPOCHS, WarmStart, starting_from

RESULTS = Path(__file__).parent / "results"


def fit_timed(
    family: str,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    warm: WarmStart | None = None,
    *,
    seed: int,
    item_features: Any = None,
) -> tuple[Recommender, float]:
    """`family` with its defaults fitted on (train, valid), from `warm` when given; and the fit's wall seconds."""
    full = Interactions.from_frame(pl.concat([train, valid]))
    data = (
        Interactions.from_frame(train, full.users, full.items),
        Interactions.from_frame(valid, full.users, full.items),
    )
    model = family_class(family)(make_config(family, {}), TrainingOptions(seed=seed))
    started = time.perf_counter()
    with starting_from(warm) if warm is not None else nullcontext():
        model.fit(*data, item_features)
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--families", default="biased_mf,bpr_mf,neumf,mult_vae,sasrec,gru4rec,hybrid_features")
    parser.add_argument("--newest", type=float, default=0.05, help="share of the training rows that arrive late")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm-epochs", type=int, default=WARM_EPOCHS, help="most epochs of each warm loop")
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/refresh_<dataset>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raw = load_source(args.dataset)
    parts = protocol_parts(contract_valid(raw), "P4")
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    cut = int(np.quantile(parts.history["timestamp"].to_numpy(), 1.0 - args.newest))
    older = {
        name: frame.filter(pl.col("timestamp") < cut)
        for name, frame in (("train", parts.train), ("valid", parts.valid))
    }
    evaluation = protocol_evaluation_config("temporal-user")
    tags = tags_until(raw.tags, cast(int, parts.history["timestamp"].max())) if raw.tags is not None else None
    features = build_item_features(raw.items, tags) if raw.items is not None else None
    results: dict[str, Any] = {
        "dataset": args.dataset,
        "protocol": "P4",
        "newest_share": args.newest,
        "warm_epochs": args.warm_epochs,
        "arrived_rows": parts.history.height - older["train"].height - older["valid"].height,
    }
    for family in args.families.split(","):
        item_features = features if family_class(family).uses_item_features else None
        fit = partial(fit_timed, family, seed=args.seed, item_features=item_features)
        earlier, earlier_seconds = fit(older["train"], older["valid"])
        retrained, retrain_seconds = fit(parts.train, parts.valid)
        full_vocabularies = (retrained.users, retrained.items)
        warm = WarmStart.between(
            earlier.trained_parameters() or {}, (earlier.users, earlier.items), full_vocabularies, args.warm_epochs
        )
        refreshed, refresh_seconds = fit(parts.train, parts.valid, warm)
        scored = {
            name: evaluate_model(model, parts.test, evaluation)
            for name, model in (("earlier", earlier), ("retrain", retrained), ("refresh", refreshed))
        }
        row: dict[str, Any] = {
            name: [round(e.metrics[key], 4) for key in ("ndcg_at_10", "ndcg_at_10_ci_low", "ndcg_at_10_ci_high")]
            for name, e in scored.items()
        }
        for other in ("retrain", "earlier"):
            paired = compare_paired(scored["refresh"].per_user, scored[other].per_user, "ndcg_at_10", seed=args.seed)
            row[f"refresh_minus_{other}"] = [
                round(paired.difference, 4),
                round(paired.ci_low, 4),
                round(paired.ci_high, 4),
            ]
        row |= {
            "n_eval_users": scored["retrain"].metrics["n_eval_users"],
            "earlier_fit_seconds": round(earlier_seconds, 1),
            "retrain_seconds": round(retrain_seconds, 1),
            "refresh_seconds": round(refresh_seconds, 1),
            "speedup": round(retrain_seconds / max(refresh_seconds, 1e-9), 2),
            "warm_started": earlier.trained_parameters() is not None,
        }
        results[family] = row
        print(family, json.dumps(row), flush=True)
    out = args.out or RESULTS / f"refresh_{args.dataset}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
