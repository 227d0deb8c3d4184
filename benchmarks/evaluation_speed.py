"""Full-ranking top-10 evaluation: wall time and peak memory on synthetic data (default 100k users x
50k items), against a plain per-user Python loop run on a subset of users and extrapolated.

    .venv/bin/python -m benchmarks.evaluation_speed
    .venv/bin/python -m benchmarks.evaluation_speed --users 20000 --items 10000 --loop-users 500 --cutoffs 5,10,20,50

The model is a stand-in: dot products of seeded random user and item factors, so the figures are
the evaluation's own cost (scoring, excluding history, top-k, metrics, bootstrap intervals), not a
family's. Prints one JSON line (and writes it to --out when given). Times are wall-clock on a shared
machine: other work on the cores changes them from run to run; the peak memory is the process's
resident set, sampled every 20 ms, including the synthetic data.
"""

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, PositiveInt

from benchmarks.memory import measure
from recsys_models.base import Recommender
from recsys_models.evaluation import EvaluationConfig, evaluate_ranking
from recsys_models.interactions import IdVocabulary, Interactions

logger = logging.getLogger(__name__)
MEMORY_LIMIT_MB = 4096


class RandomFactorsConfig(BaseModel):
    """Size of the stand-in model's factors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_factors: PositiveInt = 32


class RandomFactors(Recommender):
    """Stand-in model: scores are dot products of seeded random user and item factors."""

    family = "random_factors"
    config_type = RandomFactorsConfig
    config: RandomFactorsConfig

    def _fit(self, train: Interactions, valid: Interactions | None, item_features: Any) -> None:
        rng = np.random.default_rng(self.options.seed)
        shape = self.config.n_factors
        self._user_factors = torch.from_numpy(rng.standard_normal((train.n_users, shape), dtype=np.float32))
        self._item_factors = torch.from_numpy(rng.standard_normal((train.n_items, shape), dtype=np.float32))

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(self._check_users(user_indices))
        return (self._user_factors[users] @ self._item_factors.T).numpy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"users": self._user_factors.numpy(), "items": self._item_factors.numpy()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._user_factors, self._item_factors = torch.from_numpy(state["users"]), torch.from_numpy(state["items"])


def synthetic(
    n_users: int, n_items: int, train_per_user: int, test_per_user: int, seed: int
) -> tuple[Interactions, pl.DataFrame]:
    """Training interactions and relevant test rows; items drawn with a long-tailed popularity."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(n_items) + 10.0)
    popularity /= popularity.sum()
    vocab_users, vocab_items = IdVocabulary(np.arange(n_users)), IdVocabulary(np.arange(n_items))
    train_users = np.repeat(np.arange(n_users), train_per_user)
    train_items = rng.choice(n_items, size=train_users.size, p=popularity)
    train = Interactions(
        user_idx=train_users,
        item_idx=train_items,
        rating=np.full(train_users.size, 4.0, dtype=np.float32),
        timestamp=np.zeros(train_users.size, dtype=np.int64),
        users=vocab_users,
        items=vocab_items,
    )
    test_users = np.repeat(np.arange(n_users), test_per_user)
    test = pl.DataFrame(
        {
            "user_id": test_users,
            "item_id": rng.choice(n_items, size=test_users.size, p=popularity),
            "rating": np.full(test_users.size, 5.0),
            "timestamp": np.ones(test_users.size, dtype=np.int64),
        }
    )
    return train, test


def per_user_loop(
    model: Recommender, test: pl.DataFrame, users: np.ndarray, k: int
) -> tuple[float, dict[str, np.ndarray]]:
    """The plain way: one user at a time, numpy top-k, metrics in Python. Returns seconds and per-user metrics."""
    relevant = {
        user: set(items)
        for user, items in test.filter(pl.col("user_id").is_in(users.tolist()))
        .group_by("user_id")
        .agg("item_id")
        .iter_rows()
    }
    metrics = {name: np.empty(users.size) for name in ("ndcg", "recall", "precision", "hit_rate", "map")}
    started = time.perf_counter()
    for row, user in enumerate(users):
        scores = model.score(np.array([user]))[0].copy()
        scores[model.seen[user].indices] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        wanted = relevant[user]
        gains = [int(item) in wanted for item in top]
        found, precision_sum = 0, 0.0
        for rank, gain in enumerate(gains, start=1):
            if gain:
                found += 1
                precision_sum += found / rank
        dcg = sum(1 / math.log2(rank + 2) for rank, gain in enumerate(gains) if gain)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
        metrics["ndcg"][row] = dcg / ideal
        metrics["recall"][row] = found / len(wanted)
        metrics["precision"][row] = found / k
        metrics["hit_rate"][row] = float(found > 0)
        metrics["map"][row] = precision_sum / min(len(wanted), k)
    return time.perf_counter() - started, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--train-per-user", type=int, default=20)
    parser.add_argument("--test-per-user", type=int, default=5)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--cutoffs", default="10", help="comma-separated cut-offs; the first is the headline k")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--loop-users", type=int, default=1000, help="users the per-user loop runs on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cutoffs = tuple(int(value) for value in args.cutoffs.split(","))

    train, test = synthetic(args.users, args.items, args.train_per_user, args.test_per_user, args.seed)
    model = RandomFactors(RandomFactorsConfig(n_factors=args.factors)).fit(train)
    with measure() as idle:  # the resident set before evaluating: data, model and libraries
        pass
    baseline_mb = idle.peak_rss_mb
    config = EvaluationConfig(k=cutoffs[0], cutoffs=cutoffs, batch_size=args.batch_size, seed=args.seed)
    logger.info("data ready (%.0f MB resident); evaluating %d users x %d items", baseline_mb, args.users, args.items)
    with measure() as cost:
        result = evaluate_ranking(model, test, config)
    logger.info("vectorised evaluation: %.1f s, peak %.0f MB", cost.seconds, cost.peak_rss_mb)

    k = cutoffs[0]
    subset = np.sort(np.random.default_rng(args.seed).choice(args.users, size=args.loop_users, replace=False))
    loop_seconds, loop_metrics = per_user_loop(model, test, subset, k)
    extrapolated = loop_seconds * args.users / args.loop_users
    vectorised = result.per_user.filter(pl.col("user_id").is_in(subset.tolist())).sort("user_id")
    agree = all(np.allclose(values, vectorised[f"{name}_at_{k}"].to_numpy()) for name, values in loop_metrics.items())
    logger.info("per-user loop: %.1f s on %d users -> %.0f s extrapolated", loop_seconds, args.loop_users, extrapolated)
    report = {
        "users": args.users,
        "items": args.items,
        "train_rows": len(train),
        "test_rows": test.height,
        "cutoffs": list(cutoffs),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "evaluation_seconds": round(cost.seconds, 2),
        "peak_rss_mb": round(cost.peak_rss_mb),
        "rss_before_mb": round(baseline_mb),
        "within_memory_limit": cost.peak_rss_mb <= MEMORY_LIMIT_MB,
        "loop_users": args.loop_users,
        "loop_seconds": round(loop_seconds, 2),
        "loop_seconds_extrapolated": round(extrapolated, 1),
        "speed_up": round(extrapolated / cost.seconds, 1),
        "loop_matches_vectorised": agree,
        f"ndcg_at_{k}": round(result.summary[f"ndcg_at_{k}"], 5),
        "n_eval_users": result.summary["n_eval_users"],
    }
    line = json.dumps(report)
    print(line)
    if args.out is not None:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
