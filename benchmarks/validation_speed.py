"""Wall time and peak memory of the ratings contract on synthetic data (issue: 5M rows under 10 s).

    .venv/bin/python -m benchmarks.validation_speed --rows 5000000 --bad-share 0.005

Generates the ratings (not timed), corrupts a share of them (ratings out of range), then times
`validate_ratings` with the item table, after Great Expectations has been imported once.
"""

import argparse
import json

import numpy as np
import polars as pl

from benchmarks.memory import measure
from data_contracts import validate_items, validate_ratings
from data_contracts.suite import import_great_expectations
from recsys_models.datasets import SyntheticConfig, generate_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--bad-share", type=float, default=0.005)
    args = parser.parse_args()
    dataset = generate_synthetic(SyntheticConfig(n_users=200_000, n_items=50_000, n_ratings=args.rows))
    rng = np.random.default_rng(0)
    bad = rng.random(args.rows) < args.bad_share
    ratings = dataset.ratings.with_columns(
        pl.when(pl.Series(bad)).then(9.0).otherwise(pl.col("rating")).alias("rating")
    )
    import_great_expectations()
    assert dataset.items is not None  # the generator always makes an item table
    with measure() as items_cost:
        items = validate_items(dataset.items).valid
    with measure() as ratings_cost:
        outcome = validate_ratings(ratings, items, dataset.scale)
    print(
        json.dumps(
            {
                "rows": args.rows,
                "quarantined": outcome.quarantine.height,
                "items_seconds": round(items_cost.seconds, 2),
                "ratings_seconds": round(ratings_cost.seconds, 2),
                "peak_rss_mb": round(ratings_cost.peak_rss_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
