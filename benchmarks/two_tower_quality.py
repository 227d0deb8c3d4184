"""Quality of `two_tower` (and `two_tower_rerank`) under P2/P3/P4, served from the ANN index and exactly.

    .venv/bin/python -m benchmarks.two_tower_quality --dataset ml-latest-small --protocol P4
    .venv/bin/python -m benchmarks.two_tower_quality --dataset ml-100k --protocol P2 --family two_tower_rerank
    .venv/bin/python -m benchmarks.two_tower_quality --dataset ml-100k --protocol P4 --validation \
        --config '{"temperature": 0.1}'

Like benchmarks/protocol_quality.py (same splits, same evaluation code), but the model also gets
the item features the train stage gives it (genres, tags up to the last training timestamp, year
buckets), and the ranking is evaluated twice: through the family's `recommend` (the ANN index,
what the product serves) and by exact search. Prints one JSON line with both, plus recall@k of
the served lists against the exact ones. `--validation` tunes without touching test.
"""

import argparse
import json
import time
from typing import cast

import numpy as np
import polars as pl
import torch

from benchmarks.protocol_quality import HEADLINE, PROTOCOL_NAMES, contract_valid, load_source, protocol_parts
from recsys_models.evaluation import evaluate_model, protocol_evaluation_config
from recsys_models.features import build_item_features, tags_until
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config
from recsys_models.two_tower import TwoTower, recall_at_k
from recsys_models.two_tower.rerank import TwoTowerRerank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--protocol", default="P4", choices=sorted(PROTOCOL_NAMES))
    parser.add_argument("--family", default="two_tower", choices=["two_tower", "two_tower_rerank"])
    parser.add_argument("--config", default="{}", help="family hyperparameters as JSON")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--validation", action="store_true", help="score on the validation tail (tuning)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    raw = load_source(args.dataset)
    parts = protocol_parts(contract_valid(raw), args.protocol)
    if args.validation:
        parts = protocol_parts(parts.history, args.protocol)
    full = Interactions.from_frame(parts.history)
    train = Interactions.from_frame(parts.train, full.users, full.items)
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    valid = Interactions.from_frame(parts.valid, full.users, full.items)
    tags = None if raw.tags is None else tags_until(raw.tags, cast(int, parts.history["timestamp"].max()))
    features = build_item_features(raw.items, tags) if raw.items is not None else None

    config = make_config(args.family, json.loads(args.config))
    # two_tower or two_tower_rerank
    model = cast(TwoTower | TwoTowerRerank, family_class(args.family)(config, TrainingOptions(seed=args.seed)))
    started = time.perf_counter()
    model.fit(train, valid, features)
    fit_seconds = time.perf_counter() - started
    name = PROTOCOL_NAMES[args.protocol]
    catalogue = pl.concat([parts.history, parts.test])["item_id"].n_unique() if name == "leave-one-out" else None
    evaluation = protocol_evaluation_config(name)
    result = {
        "dataset": args.dataset,
        "protocol": args.protocol,
        "family": args.family,
        "config": json.loads(args.config),
        "fit_seconds": round(fit_seconds, 2),
        "epochs": len(model.history),
        "scored_on": "validation" if args.validation else "test",
    }
    for label, exact in (("ann", False), ("exact", True)):
        model.exact_search = exact
        started = time.perf_counter()
        metrics = evaluate_model(model, parts.test, evaluation, n_catalogue_items=catalogue).metrics
        result[label] = {key: round(metrics[key], 4) for key in HEADLINE if key in metrics}
        result[label]["evaluate_seconds"] = round(time.perf_counter() - started, 2)
    retriever = cast(TwoTowerRerank, model).retriever if args.family == "two_tower_rerank" else cast(TwoTower, model)
    users = np.arange(len(retriever.users))
    served, _ = retriever.recommend(users, 100, exact=False)
    reference, _ = retriever.recommend(users, 100, exact=True)
    result["retriever_recall_at_100_vs_exact"] = round(recall_at_k(served, reference), 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
