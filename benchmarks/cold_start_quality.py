"""Warm and cold-item quality of families under P2 / P4, with item features, in one table.

    .venv/bin/python -m benchmarks.cold_start_quality --dataset ml-latest-small --protocol P4 \
        --families popularity,ease,content_tfidf,hybrid_weighted,hybrid_switching,hybrid_features
    .venv/bin/python -m benchmarks.cold_start_quality --dataset ml-100k --protocol P2 --families content_tfidf \
        --config '{"content_tfidf": {"title_weight": 0}}' --validation

Needs RECSYS_DATA_DIR (or ../shared/datasets beside the checkout). Splits and evaluation are the
library's (`protocol_split`, `evaluate_model`, `evaluate_cold_items`); the item features are the
train stage's (`build_item_features` with the tags applied up to the last training timestamp).
Every family also gets a paired comparison of warm NDCG@10 with `--baseline` (default `ease`)
on the same users. `--validation` tunes without touching test (the protocol applied to the
training part alone). Prints one JSON line per family; `--out` merges them into a results JSON
keyed by dataset / protocol / family.
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import cast

import torch

from benchmarks.protocol_quality import PROTOCOL_NAMES, protocol_parts, valid_ratings
from recsys_models.datasets import load_dataset
from recsys_models.evaluation import compare_paired, evaluate_cold_items, evaluate_model, protocol_evaluation_config
from recsys_models.features import build_item_features, tags_until
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config

WARM = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")


def _with_interval(metrics: dict, name: str) -> list[float]:
    return [round(metrics[name], 4), round(metrics[f"{name}_ci_low"], 4), round(metrics[f"{name}_ci_high"], 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--protocol", default="P4", choices=("P2", "P4"))
    parser.add_argument("--families", required=True, help="comma-separated families")
    parser.add_argument("--config", default="{}", help="JSON {family: hyperparameters}")
    parser.add_argument("--baseline", default="ease", help="family every other is compared with, paired, on warm users")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--validation", action="store_true", help="score on the validation tail (tuning)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON to merge into")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = json.loads(args.config)

    data_dir = os.environ.get("RECSYS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    raw = load_dataset(args.dataset, Path(data_dir), Path("workspace/downloads"))
    parts = protocol_parts(valid_ratings(args.dataset), args.protocol)
    if args.validation:
        parts = protocol_parts(parts.history, args.protocol)
    full = Interactions.from_frame(parts.history)
    train = Interactions.from_frame(parts.train, full.users, full.items)
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    assert raw.items is not None  # MovieLens has an item table
    valid = Interactions.from_frame(parts.valid, full.users, full.items)
    tags = tags_until(raw.tags, cast(int, parts.history["timestamp"].max())) if raw.tags is not None else None
    features = build_item_features(raw.items, tags)
    config = protocol_evaluation_config(PROTOCOL_NAMES[args.protocol])
    results, per_user = {}, {}
    for family in [name.strip() for name in args.families.split(",")]:
        model_class = family_class(family)
        model = model_class(make_config(family, configs.get(family)), TrainingOptions(seed=args.seed))
        started = time.perf_counter()
        model.fit(train, valid, features if model_class.uses_item_features else None)
        fit_seconds = time.perf_counter() - started
        warm = evaluate_model(model, parts.test, config)
        cold = evaluate_cold_items(model, parts.test, features, config).summary
        per_user[family] = warm.per_user
        result = {
            "dataset": args.dataset,
            "protocol": args.protocol,
            "family": family,
            "config": configs.get(family, {}),
            "scored_on": "validation" if args.validation else "test",
            "fit_seconds": round(fit_seconds, 2),
            "warm_n_eval_users": warm.metrics["n_eval_users"],
        }
        result |= {f"warm_{name}": _with_interval(warm.metrics, name) for name in WARM}
        result |= {
            "cold_scored": cold["cold_items_scored"],
            "cold_n_eval_users": cold["cold_items_n_eval_users"],
            "cold_n_candidate_items": cold["cold_items_n_candidate_items"],
        }
        result |= {f"cold_{name}": _with_interval(cold, f"cold_items_{name}") for name in WARM}
        result |= {f"cold_random_{name}": round(cold[f"cold_items_random_{name}"], 4) for name in WARM}
        for attribute in ("weight", "threshold"):
            if hasattr(model, attribute):
                result[f"fitted_{attribute}"] = getattr(model, attribute)
        if args.baseline in per_user and family != args.baseline:
            paired = compare_paired(warm.per_user, per_user[args.baseline], "ndcg_at_10", seed=args.seed)
            result[f"warm_ndcg_at_10_minus_{args.baseline}"] = [
                round(paired.difference, 4),
                round(paired.ci_low, 4),
                round(paired.ci_high, 4),
            ]
        results[family] = result
        print(json.dumps(result), flush=True)
    if args.out is not None:
        stored = json.loads(args.out.read_text()) if args.out.exists() else {}
        key = f"{args.dataset}/{args.protocol}" + ("/validation" if args.validation else "")
        stored[key] = stored.get(key, {}) | results
        args.out.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
