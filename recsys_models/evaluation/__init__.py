"""One evaluation for every family: rating errors, top-k ranking metrics at several cut-offs,
beyond-accuracy metrics, per-user values with bootstrap intervals, slices, and paired comparisons.

One module per concern: `config` (what is measured and how, per protocol), `rating`, `ranking`
(by id, or from histories under P5), `cold_items`, `paired`, and `common` (intervals and slices
they share). `evaluate_model` runs rating and ranking for the evaluate stage.
"""

from dataclasses import dataclass
from typing import Any

import polars as pl
import scipy.sparse as sp

from recsys_models.base import Recommender
from recsys_models.evaluation.cold_items import ColdItemEvaluation, evaluate_cold_items
from recsys_models.evaluation.config import EvaluationConfig, protocol_evaluation_config
from recsys_models.evaluation.paired import PairedComparison, compare_paired, minimum_detectable_effect
from recsys_models.evaluation.ranking import (
    RankingEvaluation,
    evaluate_ranking,
    evaluate_ranking_from_histories,
    item_feature_matrix,
)
from recsys_models.evaluation.rating import RatingEvaluation, evaluate_rating

__all__ = [
    "ColdItemEvaluation",
    "Evaluation",
    "EvaluationConfig",
    "PairedComparison",
    "RankingEvaluation",
    "RatingEvaluation",
    "compare_paired",
    "evaluate_cold_items",
    "evaluate_model",
    "evaluate_ranking",
    "evaluate_ranking_from_histories",
    "evaluate_rating",
    "item_feature_matrix",
    "minimum_detectable_effect",
    "protocol_evaluation_config",
]


@dataclass(frozen=True)
class Evaluation:
    """Everything the evaluate stage writes: `metrics` (flat, plus nested `slices`) and the frames."""

    metrics: dict[str, Any]
    per_user: pl.DataFrame
    per_user_rating: pl.DataFrame
    recommendations: pl.DataFrame


def evaluate_model(
    model: Recommender,
    test: pl.DataFrame,
    config: EvaluationConfig | None = None,
    item_features: sp.csr_matrix | None = None,
    n_catalogue_items: int | None = None,
    histories: pl.DataFrame | None = None,
) -> Evaluation:
    """Rating and ranking evaluation of one model on one test part; see the functions it calls.
    With `histories` (P5), test users are ranked from them (`evaluate_ranking_from_histories`)."""
    config = config or EvaluationConfig()
    rating = evaluate_rating(model, test, config)
    if histories is None:
        ranking = evaluate_ranking(model, test, config, item_features, n_catalogue_items)
    else:
        ranking = evaluate_ranking_from_histories(model, histories, test, config, item_features)
    slices = {
        group: {
            key: (value | ranking.slices[group][key]) if isinstance(value, dict) else value
            for key, value in rating.slices[group].items()
        }
        for group in rating.slices
    }
    metrics = rating.summary | ranking.summary | {"slices": slices}
    return Evaluation(metrics, ranking.per_user, rating.per_user, ranking.recommendations)
