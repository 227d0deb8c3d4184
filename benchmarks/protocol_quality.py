"""Quality and fit time of one family under a protocol of PROTOCOLS.md, with the project's metric code.

    .venv/bin/python -m benchmarks.protocol_quality --dataset ml-latest-small --protocol P4 --family popularity
    .venv/bin/python -m benchmarks.protocol_quality --dataset ml-100k --protocol P3 --family biased_mf \
        --config '{"n_factors": 32}'

Needs RECSYS_DATA_DIR (or ../shared/datasets beside the checkout) for the MovieLens datasets.
The validation tail for early stopping and tuning is cut from train by the protocol's own rule
(P2: last 10% of train globally; P4: last 10% of each user's train; P3: second-to-last item).
Prints one JSON line, with 95% bootstrap intervals over users. `--validation` tunes without touching
test: it applies the same protocol to the training part alone (train + validation tail) and scores
on that inner test. The splits and the evaluation are the library's (`protocol_split`,
`protocol_evaluation_config`, `evaluate_model`): the same code the pipeline's stages run.
"""

import argparse
import json
import os
import time
from pathlib import Path

import polars as pl
import torch

from data_contracts import validate_ratings
from recsys_models.datasets import RawDataset, load_dataset
from recsys_models.datasets.spec import ProtocolName
from recsys_models.evaluation import evaluate_model, protocol_evaluation_config
from recsys_models.interactions import Interactions
from recsys_models.options import TrainingOptions
from recsys_models.registry import family_class, make_config
from recsys_models.splitting import Split, SplitSettings, protocol_split

PROTOCOL_NAMES: dict[str, ProtocolName] = {"P2": "temporal-global", "P3": "leave-one-out", "P4": "temporal-user"}
HEADLINE = (
    "rmse",
    "rmse_ci_low",
    "rmse_ci_high",
    "mae",
    "ndcg_at_10",
    "ndcg_at_10_stderr",
    "ndcg_at_10_ci_low",
    "ndcg_at_10_ci_high",
    "hit_rate_at_10",
    "hit_rate_at_10_ci_low",
    "hit_rate_at_10_ci_high",
    "recall_at_10",
    "coverage_at_10",
    "n_eval_users",
    "n_eval_rows",
)


def protocol_parts(ratings: pl.DataFrame, protocol: str) -> Split:
    """Train, validation tail and test of a protocol (P2, P3 or P4), as the split stage cuts them."""
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be P2, P3 or P4, got {protocol!r}")
    return protocol_split(ratings, SplitSettings(protocol=PROTOCOL_NAMES[protocol]))


def load_source(dataset: str) -> RawDataset:
    """The parsed dataset from RECSYS_DATA_DIR (default ../shared/datasets beside the checkout)."""
    data_dir = os.environ.get("RECSYS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return load_dataset(dataset, Path(data_dir), Path("workspace/downloads"))


def contract_valid(raw: RawDataset) -> pl.DataFrame:
    """The ratings that pass the ratings contract."""
    return validate_ratings(raw.ratings, raw.items, raw.scale).valid


def valid_ratings(dataset: str) -> pl.DataFrame:
    return contract_valid(load_source(dataset))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--protocol", default="P2", choices=sorted(PROTOCOL_NAMES))
    parser.add_argument("--family", required=True)
    parser.add_argument("--config", default="{}", help="family hyperparameters as JSON")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--validation", action="store_true", help="score on the validation tail (tuning)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    parts = protocol_parts(valid_ratings(args.dataset), args.protocol)
    if args.validation:  # tune without touching test: the same protocol applied to the training part only
        parts = protocol_parts(parts.history, args.protocol)
    full = Interactions.from_frame(parts.history)
    model_class = family_class(args.family)
    model = model_class(make_config(args.family, json.loads(args.config)), TrainingOptions(seed=args.seed))
    started = time.perf_counter()
    assert parts.valid is not None  # protocol_split always cuts a validation tail
    model.fit(
        Interactions.from_frame(parts.train, full.users, full.items),
        Interactions.from_frame(parts.valid, full.users, full.items),
    )
    fit_seconds = time.perf_counter() - started
    name = PROTOCOL_NAMES[args.protocol]
    catalogue = pl.concat([parts.history, parts.test])["item_id"].n_unique() if name == "leave-one-out" else None
    metrics = evaluate_model(model, parts.test, protocol_evaluation_config(name), n_catalogue_items=catalogue).metrics
    result = {
        "dataset": args.dataset,
        "protocol": args.protocol,
        "family": args.family,
        "config": json.loads(args.config),
        "fit_seconds": round(fit_seconds, 2),
        "scored_on": "validation" if args.validation else "test",
    }
    print(json.dumps(result | {key: round(metrics[key], 4) for key in HEADLINE if key in metrics}))


if __name__ == "__main__":
    main()
