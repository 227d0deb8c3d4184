"""Quality, candidate recall, fit time and serving latency of the `stacked` family and of its parts.

    .venv/bin/python -m benchmarks.stacked --dataset ml-latest-small --protocol P4
    .venv/bin/python -m benchmarks.stacked --dataset ml-100k --protocol P4 \
        --config '{"parts": {"ease": {}, "als": {}, "item_knn": {}, "popularity": {}}}'
    .venv/bin/python -m benchmarks.stacked --dataset examples/instacart-repeat.yaml --protocol P4 \
        --config '{"seen_candidates": true}'

Needs RECSYS_DATA_DIR (or ../shared/datasets beside the checkout). Splits and evaluation are the
library's (`protocol_split`, `evaluate_model`), the same code the pipeline's stages run. The parts'
own figures come from the stacked model's parts themselves: after its ranker is trained they are
refit on train + valid exactly as each family fits alone, so no second fit is needed. Each part is
compared with stacked, paired on the same users (95% bootstrap interval of the difference).
Candidate recall@N: the share of each evaluated user's relevant test items that are among the
candidates (all relevant items in the denominator, as Recall@10's). Serving latency: the saved
model loaded back, `recommend` for 100 users, best of 3. Prints one JSON line per family (stacked
last); `--out` merges them into a results JSON keyed by dataset / protocol.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import torch

from benchmarks.protocol_quality import PROTOCOL_NAMES, contract_valid, load_source, protocol_parts
from recsys_models.columns import ITEM_ID, RATING, USER_ID
from recsys_models.evaluation import compare_paired, evaluate_model, protocol_evaluation_config
from recsys_models.features import build_item_features, tags_until
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.stacked import Stacked, StackedConfig
from recsys_models.stacked.model import describe


def _with_interval(metrics: dict, name: str) -> list[float]:
    return [round(metrics[name], 4), round(metrics[f"{name}_ci_low"], 4), round(metrics[f"{name}_ci_high"], 4)]


def test_candidate_recall(model: Stacked, test: pl.DataFrame, users: np.ndarray, threshold: float | None) -> float:
    """Mean over `users` (raw ids) of relevant test items among the candidates / relevant test items."""
    relevant = test if threshold is None else test.filter(pl.col(RATING) >= threshold)
    relevant = relevant.filter(pl.col(USER_ID).is_in(users.tolist())).unique([USER_ID, ITEM_ID])
    index = model.users.index_of(users)
    candidates = model.candidates(index)
    pairs = set(
        zip(
            model.users.ids[candidates.users[candidates.user_rows]].tolist(),
            model.items.ids[candidates.items].tolist(),
            strict=True,
        )
    )
    hits = relevant.with_columns(
        pl.Series("hit", [(u, i) in pairs for u, i in zip(relevant[USER_ID], relevant[ITEM_ID], strict=True)])
    )
    per_user = hits.group_by(USER_ID).agg(pl.col("hit").mean())
    return cast(float, per_user["hit"].mean())  # the mean of a Float64 column


def serving_latency(model: Stacked, n_users: int = 100, repeats: int = 3) -> float:
    """Seconds for `recommend` of `n_users` users (top 10) by the saved and reloaded model, best of `repeats`."""
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "model")
        loaded = Stacked.load(Path(folder) / "model")
        users = np.arange(min(n_users, len(loaded.users)))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            loaded.recommend(users, 10)
            times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--protocol", default="P4", choices=("P2", "P3", "P4"))
    parser.add_argument("--config", default="{}", help="JSON hyperparameters of stacked")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="results JSON to merge into")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="choose settings without touching test: the "
        "protocol applied to the training part alone, scored on that inner test",
    )
    parser.add_argument("--label", help="suffix of the results key (several configurations of one dataset)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    values = json.loads(args.config)

    raw = load_source(args.dataset)
    parts = protocol_parts(contract_valid(raw), args.protocol)
    if args.validation:
        parts = protocol_parts(parts.history, args.protocol)
    evaluation = protocol_evaluation_config(PROTOCOL_NAMES[args.protocol])
    if args.protocol == "P3" or evaluation.relevance_threshold is None:
        values.setdefault("relevance_threshold", evaluation.relevance_threshold)  # the protocol's relevance
    if not evaluation.exclude_seen:
        values.setdefault("seen_candidates", True)
    full = Interactions.from_frame(parts.history)
    train = Interactions.from_frame(parts.train, full.users, full.items)
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    valid = Interactions.from_frame(parts.valid, full.users, full.items)
    features = None
    if raw.items is not None:
        tags = tags_until(raw.tags, cast(int, parts.history["timestamp"].max())) if raw.tags is not None else None
        features = build_item_features(raw.items, tags)

    model = Stacked(StackedConfig(**values), TrainingOptions(seed=args.seed))
    started = time.perf_counter()
    model.fit(train, valid, features)
    fit_seconds = time.perf_counter() - started
    print(f"# {describe(model)}", flush=True)

    results, per_user = {}, {}
    for name, recommender in (*model.parts.items(), ("stacked", model)):
        scored = evaluate_model(recommender, parts.test, evaluation)
        per_user[name] = scored.per_user
        result = {
            "dataset": args.dataset,
            "protocol": args.protocol,
            "family": name,
            "n_eval_users": scored.metrics["n_eval_users"],
        }
        result |= {name_: _with_interval(scored.metrics, name_) for name_ in ("ndcg_at_10", "hit_rate_at_10")}
        results[name] = result
    best = max(model.parts, key=lambda name: results[name]["ndcg_at_10"][0])
    for name in model.parts:
        paired = compare_paired(per_user["stacked"], per_user[name], "ndcg_at_10", seed=args.seed)
        results[name]["stacked_minus_this"] = [
            round(paired.difference, 4),
            round(paired.ci_low, 4),
            round(paired.ci_high, 4),
        ]
        results[name]["candidate_recall_valid"] = round(model.candidate_recall.get(name, float("nan")), 4)
    users = per_user["stacked"][USER_ID].to_numpy()
    results["stacked"] |= {
        "config": values,
        "best_part": best,
        "fit_seconds": round(fit_seconds, 1),
        "stacked_minus_best_part": results[best]["stacked_minus_this"],
        f"candidate_recall_at_{model.config.n_candidates}_test": round(
            test_candidate_recall(model, parts.test, users, evaluation.relevance_threshold), 4
        ),
        f"candidate_recall_at_{model.config.n_candidates}_valid": round(model.candidate_recall["all"], 4),
        "serving_seconds_100_users": round(serving_latency(model), 3),
        "importances": {name: round(share, 4) for name, share in model.importances().items()},
        "ranker_rounds": model.report()["ranker_rounds"],
        "ranker_base": model.report()["ranker_base"],
    }
    for result in results.values():
        print(json.dumps(result), flush=True)
    if args.out is not None:
        stored = json.loads(args.out.read_text()) if args.out.exists() else {}
        key = "/".join(
            [args.dataset, args.protocol] + ["validation"] * args.validation + [args.label] * bool(args.label)
        )
        stored[key] = results
        args.out.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
