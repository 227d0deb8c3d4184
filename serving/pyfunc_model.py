"""MLflow pyfunc of every family, logged from this code file (no pickled training objects).

Input: a table with `user_id` (raw ids: integers or text) and optionally `item_id` or `history`.
- Without `item_id`: the top-k items per user (param `k`, default 10), seen items excluded
  unless the source allows repeats, as `user_id, item_id, score, rank, cold_user`; unknown users
  get the most popular items.
- With a `history` (a list of raw item ids, oldest first) on a row: that row's top-k are computed
  from the history, whoever the user is, without retraining (`Recommender.recommend_from_history`):
  the history's items excluded unless the source allows repeats, `cold_user` false (true, with the
  popular items, when the history holds no item the model knows), plus `unknown_items`, the
  number of history items the model does not know (ignored). Rows without one (null) are
  answered as above.
- With `item_id`: the score of each pair as `user_id, item_id, score, cold_user`, plus
  `predicted_rating` for rating families; an unknown user's pair scores the item's training count
  (`cold_user` true), a pair with an unknown item has a null score.
Missing numbers come back as None (JSON null), never NaN, which is not valid JSON.
Ids come back as they were given: text ids as text (`recsys_models.ids` codes them inside).
"""

from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:
    import pandas as pd


class RecommenderPyfunc(PythonModel):
    """Loads a saved `recsys_models` model from the `model_dir` artefact."""

    def load_context(self, context) -> None:
        import json

        import polars as pl

        from recsys_models.registry import load_model

        model_dir = Path(context.artifacts["model_dir"])
        self.model = load_model(model_dir)
        ids_path, serving_path = model_dir / "ids.parquet", model_dir / "serving.json"
        self.id_texts = pl.read_parquet(ids_path) if ids_path.exists() else None
        self.exclude_seen = json.loads(serving_path.read_text())["exclude_seen"] if serving_path.exists() else True

    # model_input is left unannotated on purpose: MLflow would infer a signature from a type hint
    # (its warning about that is kept off the terminal by reporting/console.py)
    def predict(self, context, model_input, params=None):
        import pandas as pd
        import polars as pl

        from recsys_models.ids import decode_column, id_table
        from recsys_models.inference import recommend_histories_raw, recommend_raw, score_raw_pairs

        if "user_id" not in model_input.columns:
            raise ValueError(f"input needs a 'user_id' column; got {list(model_input.columns)}")
        users = _coded_ids(model_input, "user_id")
        given = [
            id_table(pl.Series(model_input[c].astype(str)), role)
            for c, role in (("user_id", "user"), ("item_id", "item"))
            if c in model_input.columns
        ]
        texts = pl.concat([*given, *([self.id_texts] if self.id_texts is not None else [])]).unique()
        if "item_id" in model_input.columns:
            result = score_raw_pairs(self.model, users, _coded_ids(model_input, "item_id"))
        else:
            k = int((params or {}).get("k", 10))
            with_history = _history_rows(model_input)
            parts = [recommend_raw(self.model, users[~with_history], k, self.exclude_seen)]
            if with_history.any():
                histories = [
                    _coded_ids(pd.DataFrame({"item_id": list(value)}), "item_id")
                    for value in model_input["history"][with_history]
                ]
                parts.append(recommend_histories_raw(self.model, users[with_history], histories, k, self.exclude_seen))
            result = pl.concat(parts, how="diagonal_relaxed").sort("user_id", "rank", maintain_order=True)
        result = decode_column(decode_column(result, "user_id", texts, "user"), "item_id", texts, "item")
        return _json_safe(result.to_pandas())


def _json_safe(frame: "pd.DataFrame") -> "pd.DataFrame":
    """`frame` with each missing number as None: the scoring server writes NaN as `NaN`, invalid JSON."""
    for column in frame.columns[frame.isna().any()]:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _history_rows(frame) -> np.ndarray:
    """Which rows carry a history (a list of item ids; null or a missing column: none)."""
    import pandas as pd

    if "history" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    given = np.array([value is not None and not (np.isscalar(value) and pd.isna(value)) for value in frame["history"]])
    for value in frame["history"][given]:
        if isinstance(value, str) or np.isscalar(value):
            raise ValueError(f"history must be a list of item ids per row, got {value!r}")
    return given.astype(bool)


def _coded_ids(frame, column: str) -> np.ndarray:
    """A column of raw ids (integers or text) as the model's int64 ids, or a ValueError that says
    what was wrong (not one from torch)."""
    from recsys_models.ids import encode_values

    values = frame[column]
    if values.isna().any():
        raise ValueError(f"{column} has missing values")
    if values.dtype.kind in "iu":
        return np.asarray(values, dtype=np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.mod(values, 1) == 0):
            raise ValueError(f"{column} must hold integer or text ids; got values like {values.iloc[0]!r}")
        return np.asarray(values, dtype=np.int64)
    return encode_values([str(value) for value in values])


mlflow.models.set_model(RecommenderPyfunc())
