"""MLflow pyfunc of every family, logged from this code file (no pickled training objects).

Input: a table with `user_id` (raw ids) and optionally `item_id`.
- Without `item_id`: the top-k items per user (param `k`, default 10), seen items excluded,
  as `user_id, item_id, score, rank, cold_user`; unknown users get the most popular items.
- With `item_id`: the score of each pair, plus `predicted_rating` for rating families.
"""

from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class RecommenderPyfunc(PythonModel):
    """Loads a saved `recsys_models` model from the `model_dir` artefact."""

    def load_context(self, context) -> None:
        from recsys_models.registry import load_model

        self.model = load_model(Path(context.artifacts["model_dir"]))

    # model_input is left unannotated on purpose: MLflow would infer a signature from a type hint.
    def predict(self, context, model_input, params=None):
        from recsys_models.inference import recommend_raw, score_raw_pairs

        if "user_id" not in model_input.columns:
            raise ValueError(f"input needs a 'user_id' column; got {list(model_input.columns)}")
        users = _integer_ids(model_input, "user_id")
        if "item_id" in model_input.columns:
            result = score_raw_pairs(self.model, users, _integer_ids(model_input, "item_id"))
        else:
            result = recommend_raw(self.model, users, int((params or {}).get("k", 10)))
        return result.to_pandas()


def _integer_ids(frame, column: str) -> np.ndarray:
    """A column of raw ids as int64, or a ValueError that says what was wrong (not one from torch)."""
    values = frame[column]
    if values.isna().any():
        raise ValueError(f"{column} has missing values")
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{column} must hold integer ids; got values like {values.iloc[0]!r}") from error


mlflow.models.set_model(RecommenderPyfunc())
