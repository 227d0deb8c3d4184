"""Stage two of the stacked family: a LightGBM LambdaRank model over the candidates' features
(Burges 2010, "From RankNet to LambdaRank to LambdaMART: An Overview").

Groups are users; early stopping watches NDCG@10 over the candidates of a seeded held-out share
of the users. The booster is kept as LightGBM's own text format (no pickle); it predicts with as
many threads as torch has (the pipeline divides the cores among parallel tasks through torch).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from recsys_models.stacked.config import RankerConfig

if TYPE_CHECKING:  # LightGBM (with scikit-learn and pandas) loads only when a ranker trains or loads:
    import lightgbm  # importing the registry, and so every `recsys` command, stays quick


def _threads() -> int:
    return max(1, torch.get_num_threads())


def group_ndcg(scores: np.ndarray, labels: np.ndarray, group_sizes: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups of rows ranked by `scores`, gains 2^label - 1 (LightGBM's own)."""
    values = []
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for start, size in zip(np.cumsum(group_sizes) - group_sizes, group_sizes, strict=True):
        gains = 2.0 ** labels[start : start + size] - 1.0
        ideal = np.sort(gains)[::-1][:k]
        if size == 0 or ideal[0] <= 0:
            continue
        top = gains[np.argsort(-scores[start : start + size], kind="stable")[:k]]
        values.append(float((top * discount[: top.size]).sum() / (ideal * discount[: ideal.size]).sum()))
    return float(np.mean(values)) if values else 0.0


class LambdaRanker:
    """A fitted LambdaRank booster and the names of its features."""

    def __init__(self, booster: "lightgbm.Booster", names: Sequence[str], base: str | None = None) -> None:
        self.booster = booster
        self.names = list(names)
        self.base = base  # the feature the trees start from (added to their output), or None
        self._base_column = None if base is None else self.names.index(base)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        group_sizes: np.ndarray,
        names: Sequence[str],
        config: RankerConfig,
        seed: int,
        base: str | None = None,
    ) -> tuple["LambdaRanker", list[dict[str, float]]]:
        """Train on groups (consecutive rows of one user, `group_sizes` long); returns the ranker and
        its per-round held-out NDCG@10 (`{"epoch", "holdout_ndcg_at_10"}` records). With `base` (a
        feature name), boosting starts from that feature's values: the trees learn corrections to it."""
        import lightgbm

        if features.shape[0] != labels.size or group_sizes.sum() != labels.size:
            raise ValueError("features, labels and group sizes disagree on the number of rows")
        n_groups = group_sizes.size
        holdout = np.zeros(n_groups, dtype=bool)
        if n_groups >= 2:
            n_holdout = min(n_groups - 1, max(1, round(config.holdout_fraction * n_groups)))
            holdout[np.random.default_rng(seed).permutation(n_groups)[:n_holdout]] = True
        row_holdout = np.repeat(holdout, group_sizes)
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": config.learning_rate,
            "num_leaves": config.num_leaves,
            "min_data_in_leaf": config.min_data_in_leaf,
            "feature_fraction": config.feature_fraction,
            "lambda_l2": config.lambda_l2,
            "lambdarank_truncation_level": config.truncation_level,
            "num_threads": _threads(),
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        init = None if base is None else features[:, list(names).index(base)].astype(np.float64)
        train_set = lightgbm.Dataset(
            features[~row_holdout],
            labels[~row_holdout],
            group=group_sizes[~holdout],
            feature_name=list(names),
            init_score=None if init is None else init[~row_holdout],
            free_raw_data=False,
        )
        history: dict = {}
        callbacks = [lightgbm.record_evaluation(history)]
        valid_sets = []
        if holdout.any():
            valid_sets = [
                lightgbm.Dataset(
                    features[row_holdout],
                    labels[row_holdout],
                    group=group_sizes[holdout],
                    init_score=None if init is None else init[row_holdout],
                    reference=train_set,
                )
            ]
            callbacks.append(lightgbm.early_stopping(config.early_stopping_rounds, verbose=False))
        booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=config.n_estimators,
            valid_sets=valid_sets,
            valid_names=["holdout"],
            callbacks=callbacks,
        )
        curve = history.get("holdout", {}).get("ndcg@10", [])
        records = [{"epoch": index + 1, "holdout_ndcg_at_10": float(value)} for index, value in enumerate(curve)]
        return cls(booster, names, base), records

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Ranking scores of candidate rows (comparable within a user), float64."""
        iteration = self.booster.best_iteration or None
        scores = np.asarray(self.booster.predict(features, num_iteration=iteration, num_threads=_threads()))
        return scores if self._base_column is None else scores + features[:, self._base_column]

    @property
    def rounds(self) -> int:
        """Boosting rounds kept (the best one's, after early stopping)."""
        return int(self.booster.best_iteration or self.booster.num_trees())

    def importances(self) -> dict[str, float]:
        """Total gain of each feature's splits, as a share of all gain (sums to 1)."""
        iteration = self.booster.best_iteration or None
        gain = self.booster.feature_importance("gain", iteration=iteration).astype(np.float64)
        total = gain.sum()
        return {name: float(value / total) if total > 0 else 0.0 for name, value in zip(self.names, gain, strict=True)}

    def to_text(self) -> str:
        """The booster in LightGBM's text format (best iteration included)."""
        return self.booster.model_to_string()

    @classmethod
    def from_text(cls, text: str, base: str | None = None) -> "LambdaRanker":
        import lightgbm

        booster = lightgbm.Booster(model_str=text)
        return cls(booster, booster.feature_name(), base)
