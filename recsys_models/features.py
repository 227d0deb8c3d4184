"""Item side information as one sparse matrix: genres, tags, title words and release-year buckets.

The content, hybrid and two-tower families share these features. They are built from the
validated items and tags tables over the whole catalogue (raw item ids), so a model can score
an item nobody has rated from its features alone; `aligned` lays them out in a model's item
vocabulary. Values are raw counts (a genre 1, a tag its number of applications, a title word its
occurrences); weighting such as TF-IDF is the family's choice (`tfidf`).

Tags carry timestamps: callers pass only the tags applied up to the training cut-off
(`tags_until`), so no feature leaks from the test period.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_models.columns import GENRES, ITEM_ID, ITEMS_SCHEMA, TAG, TIMESTAMP, TITLE, YEAR
from recsys_models.interactions import IdVocabulary
from recsys_models.io import atomic_write_npz

FEATURE_KINDS = ("genre", "tag", "title", "year")
NO_GENRE = "(no genres listed)"  # MovieLens' placeholder: not a genre
TITLE_YEAR = re.compile(r"\(\d{4}\)\s*$")
WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset({"a", "an", "and", "the", "of", "in", "on", "to", "for", "la", "le", "les", "de", "el", "ii"})


@dataclass(frozen=True)
class ItemFeatures:
    """(n_catalogue_items, n_features) float32 counts; row r is `items.ids[r]`, column c `names[c]`.

    Names are `kind:value` with kind in FEATURE_KINDS (`genre:Comedy`, `tag:pixar`,
    `title:star`, `year:1990s`).
    """

    items: IdVocabulary
    matrix: sp.csr_matrix
    names: np.ndarray

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.items), self.names.size):
            raise ValueError(
                f"feature matrix has shape {self.matrix.shape}, expected ({len(self.items)}, {self.names.size})"
            )

    @property
    def n_features(self) -> int:
        return int(self.names.size)

    def kinds(self) -> np.ndarray:
        """The kind of each feature column (`genre`, `tag`, `title` or `year`)."""
        return np.array([name.split(":", 1)[0] for name in self.names])

    def aligned(self, vocabulary: IdVocabulary) -> sp.csr_matrix:
        """Rows in `vocabulary`'s order; an item without features gets an empty row."""
        position = self.items.index_of(vocabulary.ids)
        known = position >= 0
        selector = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (np.flatnonzero(known), position[known])),
            shape=(len(vocabulary), len(self.items)),
        )
        return sp.csr_matrix(selector @ self.matrix, dtype=np.float32)

    def subset(self, item_ids: np.ndarray) -> "ItemFeatures":
        """The features of `item_ids` (raw ids, any order; duplicates count once) that have a row."""
        position = self.items.index_of(np.unique(np.asarray(item_ids, dtype=np.int64)))
        position = position[position >= 0]
        return ItemFeatures(IdVocabulary(self.items.ids[position]), sp.csr_matrix(self.matrix[position]), self.names)

    def in_columns(self, names: np.ndarray) -> sp.csr_matrix:
        """The matrix with columns laid out as `names` (a model's feature names, e.g. from training):
        a name this build lacks is a zero column, a feature outside `names` is dropped."""
        names = np.asarray(names).astype(str)
        own = self.names.astype(str)
        if own.size == 0:
            return sp.csr_matrix((len(self.items), names.size), dtype=np.float32)
        order = np.argsort(own, kind="stable")
        position = np.clip(np.searchsorted(own[order], names), 0, own.size - 1)
        known = own[order][position] == names
        selector = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (order[position[known]], np.flatnonzero(known))),
            shape=(self.names.size, names.size),
        )
        return sp.csr_matrix(self.matrix @ selector, dtype=np.float32)

    def save(self, path: Path) -> None:
        atomic_write_npz(
            path,
            items=self.items.ids,
            indptr=self.matrix.indptr,
            indices=self.matrix.indices,
            data=self.matrix.data,
            names=self.names.astype(str),
        )

    @classmethod
    def load(cls, path: Path) -> "ItemFeatures":
        with np.load(path) as stored:
            items = IdVocabulary(stored["items"])
            names = stored["names"]
            matrix = sp.csr_matrix(
                (stored["data"], stored["indices"], stored["indptr"]), shape=(len(items), names.size)
            )
        return cls(items, matrix, names)


def title_words(title: str) -> list[str]:
    """Lower-case words of a title without its trailing `(year)`, minus stop words and one-letter words."""
    words = WORD.findall(TITLE_YEAR.sub("", title).lower())
    return [word for word in words if len(word) > 1 and word not in STOP_WORDS]


def tags_until(tags: pl.DataFrame, cutoff_timestamp: int) -> pl.DataFrame:
    """The tags applied at or before `cutoff_timestamp` (the last training timestamp)."""
    return tags.filter(pl.col(TIMESTAMP) <= cutoff_timestamp)


def build_item_features(
    items: pl.DataFrame,
    tags: pl.DataFrame | None = None,
    min_tag_items: int = 2,
    min_title_items: int = 2,
    year_bucket: int = 10,
) -> ItemFeatures:
    """Features of every item of `items` (ITEMS_SCHEMA); `tags` (TAGS_SCHEMA) is optional.

    A tag or title word must occur on at least `min_tag_items` / `min_title_items` distinct items
    to become a feature (a word on one item cannot generalise). Tags are lower-cased and trimmed.
    Years fall into buckets of `year_bucket` years (`year:1990s` for 10). A missing title, year or
    genres column counts as null in every row (a source with genres only still gets features).
    """
    if year_bucket < 1 or min_tag_items < 1 or min_title_items < 1:
        raise ValueError("year_bucket, min_tag_items and min_title_items must be positive")
    missing = {name: dtype for name, dtype in ITEMS_SCHEMA.items() if name != ITEM_ID and name not in items.columns}
    items = items.with_columns(pl.lit(None, dtype=dtype).alias(name) for name, dtype in missing.items())
    vocabulary = IdVocabulary.from_values(items[ITEM_ID].to_numpy())
    genre = (
        items.select(ITEM_ID, pl.col(GENRES).alias("value"))
        .explode("value")
        .drop_nulls()
        .filter(pl.col("value") != NO_GENRE)
        .select(ITEM_ID, ("genre:" + pl.col("value")).alias("name"), pl.lit(1.0).alias("count"))
        .unique([ITEM_ID, "name"])
    )
    year = items.drop_nulls(YEAR).select(
        ITEM_ID,
        ("year:" + ((pl.col(YEAR) // year_bucket) * year_bucket).cast(pl.String) + "s").alias("name"),
        pl.lit(1.0).alias("count"),
    )
    words = items.select(
        ITEM_ID, pl.col(TITLE).fill_null("").map_elements(title_words, return_dtype=pl.List(pl.String)).alias("w")
    ).explode("w")
    title = _frequent(
        words.drop_nulls("w").group_by(ITEM_ID, "w").len("count").rename({"w": "value"}), "title", min_title_items
    )
    parts = [genre, year, title]
    if tags is not None and tags.height:
        applied = tags.select(ITEM_ID, pl.col(TAG).str.strip_chars().str.to_lowercase().alias("value"))
        applied = applied.filter(pl.col("value") != "").group_by(ITEM_ID, "value").len("count")
        parts.append(_frequent(applied, "tag", min_tag_items))
    long = pl.concat([part.with_columns(pl.col("count").cast(pl.Float32)) for part in parts])
    long = long.filter(pl.col(ITEM_ID).is_in(vocabulary.ids.tolist()))
    names = np.sort(long["name"].unique().to_numpy().astype(str))
    rows = vocabulary.index_of(long[ITEM_ID].to_numpy())
    cols = np.searchsorted(names, long["name"].to_numpy().astype(str))
    matrix = sp.csr_matrix(
        (long["count"].to_numpy(), (rows, cols)), shape=(len(vocabulary), names.size), dtype=np.float32
    )
    matrix.sum_duplicates()
    return ItemFeatures(vocabulary, matrix, names)


def _frequent(counts: pl.DataFrame, kind: str, min_items: int) -> pl.DataFrame:
    """(item, `kind:value`, count) rows of the values that occur on at least `min_items` items."""
    frequent = counts.group_by("value").len("items").filter(pl.col("items") >= min_items).select("value")
    return counts.join(frequent, on="value").select(
        ITEM_ID, (pl.lit(f"{kind}:") + pl.col("value")).alias("name"), pl.col("count").cast(pl.Float64)
    )


def idf_weights(matrix: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency of each column: log((1 + n) / (1 + df)) + 1."""
    document_frequency = np.diff(sp.csc_matrix(matrix).indptr)
    return (np.log((1.0 + matrix.shape[0]) / (1.0 + document_frequency)) + 1.0).astype(np.float32)


def tfidf(matrix: sp.csr_matrix, sublinear: bool = True, idf: np.ndarray | None = None) -> sp.csr_matrix:
    """Row-normalised TF-IDF: tf = 1 + log(count) when `sublinear`, idf = log((1 + n) / (1 + df)) + 1.

    `idf` (one weight per column) reuses the weights of another matrix, e.g. a model's training
    catalogue when weighting new items; by default they come from `matrix` itself.
    """
    counts = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    counts.eliminate_zeros()
    if sublinear:
        counts.data = 1.0 + np.log(np.maximum(counts.data, 1e-12))
    weights = idf_weights(counts) if idf is None else np.asarray(idf, dtype=np.float32)
    if weights.shape != (counts.shape[1],):
        raise ValueError(f"idf has shape {weights.shape}, expected ({counts.shape[1]},)")
    weighted = sp.csr_matrix(counts @ sp.diags(weights), dtype=np.float32)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ weighted, dtype=np.float32)
