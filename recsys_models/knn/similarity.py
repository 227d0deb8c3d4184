"""Sparse top-k similarity between the rows of a sparse matrix, computed a chunk of rows at a time.

Rows are the entities compared (items for item-item, users for user-user); columns are the features
(the other side); stored entries are observations, whatever their value. Measures:

- `cosine`: raw vectors, norms over all of a row's entries (Sarwar et al., WWW 2001; Deshpande &
  Karypis, TOIS 2004). On binary data this is the co-occurrence count over sqrt(n_i n_j).
- `adjusted_cosine`: entries centred on their column's mean (the user's mean rating for item-item),
  sums over the co-observed columns only (Sarwar et al., 2001).
- `pearson`: entries centred on their row's mean (the item's mean for item-item, the user's for
  user-user), sums over the co-observed columns only (Resnick et al., CSCW 1994; Herlocker et al., 1999).

Significance shrinkage multiplies a similarity by n / (n + shrinkage), n the number of co-observed
columns (Koren, TKDD 2010, eq. 2). Self-similarity is dropped; only similarities above
`min_similarity` are kept, at most `n_neighbours` per row (the largest).

Each chunk of rows gives dense (chunk x n_rows) float32 blocks, so no n x n matrix is ever built.
A block is a sparse x sparse product (cost: the multiply-adds the chunk's co-observations need) or
a sparse x dense one against the densified chunk (cost: every stored entry times the chunk size, but
several times cheaper per multiply-add); `product="auto"` picks the cheaper one for the whole matrix,
so chunking never changes the arithmetic.
"""

import logging
from typing import Literal

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

Measure = Literal["cosine", "adjusted_cosine", "pearson"]
Product = Literal["auto", "sparse", "dense"]
CHUNK_ELEMENTS = 2**22  # cells of a dense block (16 MB in float32); a handful of blocks are alive at once
SPARSE_PRODUCT_COST = 12.0  # a sparse x sparse multiply-add in sparse x dense ones (scipy; MovieLens, 1M synthetic)


def top_k_similarity(
    matrix: sp.csr_matrix,
    measure: Measure,
    n_neighbours: int,
    shrinkage: float = 0.0,
    min_similarity: float = 0.0,
    chunk_rows: int | None = None,
    product: Product = "auto",
) -> sp.csr_matrix:
    """Row x row similarities (float32 CSR), at most `n_neighbours` per row, each above `min_similarity`."""
    if measure not in ("cosine", "adjusted_cosine", "pearson"):
        raise ValueError(f"measure must be cosine, adjusted_cosine or pearson, got {measure!r}")
    if product not in ("auto", "sparse", "dense"):
        raise ValueError(f"product must be auto, sparse or dense, got {product!r}")
    if n_neighbours < 1 or shrinkage < 0:
        raise ValueError(f"need n_neighbours >= 1 and shrinkage >= 0, got {n_neighbours} and {shrinkage}")
    values = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    values.sum_duplicates()
    values.data = _centred(values, measure).astype(np.float32)
    values = sp.csr_matrix(values, dtype=np.float32)
    n_rows, n_cols = values.shape
    chunk_rows = chunk_rows or max(1, CHUNK_ELEMENTS // max(n_rows, n_cols, 1))
    dense = product == "dense" or (product == "auto" and _dense_is_cheaper(values))
    blocks = _Blocks(values, measure, shrinkage, dense)
    parts = []
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        parts.append(_keep_top(blocks.similarity(start, stop), np.arange(start, stop), n_neighbours, min_similarity))
    logger.debug("%s similarity of %d rows in %d chunks (dense products: %s)", measure, n_rows, len(parts), dense)
    result = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, 0), dtype=np.float32)
    return sp.csr_matrix(result, shape=(n_rows, n_rows), dtype=np.float32)


def query_top_k_similarity(
    queries: sp.csr_matrix,
    matrix: sp.csr_matrix,
    measure: Measure,
    n_neighbours: int,
    shrinkage: float = 0.0,
    min_similarity: float = 0.0,
    excluded: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Similarities of query rows that `matrix` does not hold with the rows of `matrix`, (n_queries,
    n_rows), at most `n_neighbours` per query above `min_similarity`, as `top_k_similarity` computes
    them for a row of `matrix` itself; row `excluded[q]` (-1: none) is never a neighbour of query q.

    Queries are centred as the rows are, on the rows' column means for `adjusted_cosine`. A query
    equal to a row gets that row's similarities bit for bit (same products, same top-k selection,
    ties included).
    """
    rows = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    rows.sum_duplicates()
    column_means = _column_means(rows)
    rows.data = _centred(rows, measure)
    query = sp.csr_matrix(queries, dtype=np.float64, copy=True)
    query.sum_duplicates()
    query.data = _centred(query, measure, column_means)
    n_rows, n_queries = rows.shape[0], query.shape[0]
    dense = _dense_is_cheaper(sp.csr_matrix(rows, dtype=np.float32))  # the products `top_k_similarity` uses
    blocks = _Blocks(sp.csr_matrix(sp.vstack([rows, query]), dtype=np.float32), measure, shrinkage, dense)
    excluded = np.full(n_queries, -1) if excluded is None else np.asarray(excluded, dtype=np.int64)
    chunk_rows = max(1, CHUNK_ELEMENTS // max(n_rows + n_queries, 1))
    parts = []
    for start in range(0, n_queries, chunk_rows):
        stop = min(start + chunk_rows, n_queries)
        block = np.ascontiguousarray(blocks.similarity(n_rows + start, n_rows + stop)[:, :n_rows])
        parts.append(_keep_top(block, excluded[start:stop], n_neighbours, min_similarity))
    result = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_rows), dtype=np.float32)
    return sp.csr_matrix(result, shape=(n_queries, n_rows), dtype=np.float32)


def _column_means(values: sp.csr_matrix) -> np.ndarray:
    """Mean of each column's stored entries (0 for an empty column)."""
    counts = np.bincount(values.indices, minlength=values.shape[1])
    sums = np.bincount(values.indices, weights=values.data, minlength=values.shape[1])
    return np.divide(sums, counts, out=np.zeros(counts.size), where=counts > 0)


def _centred(values: sp.csr_matrix, measure: Measure, column_means: np.ndarray | None = None) -> np.ndarray:
    """The entries after the measure's centring (none for cosine); adjusted cosine centres on
    `column_means` when given, else on the matrix's own."""
    if measure == "cosine":
        return values.data
    if measure == "pearson":
        counts = np.diff(values.indptr)
        means = np.divide(np.asarray(values.sum(axis=1)).ravel(), counts, out=np.zeros(counts.size), where=counts > 0)
        return values.data - np.repeat(means, counts)
    means = _column_means(values) if column_means is None else column_means
    return values.data - means[values.indices]


def _dense_is_cheaper(values: sp.csr_matrix) -> bool:
    """Compare the multiply-adds of M @ M.T done sparse x sparse and sparse x dense, weighted by cost."""
    column_counts = np.bincount(values.indices, minlength=values.shape[1]).astype(np.float64)
    sparse_multiply_adds = float((column_counts**2).sum())
    dense_multiply_adds = float(values.nnz) * values.shape[0]
    return dense_multiply_adds < SPARSE_PRODUCT_COST * sparse_multiply_adds


class _Blocks:
    """Dense float32 similarity blocks of a chunk of rows against all rows."""

    def __init__(self, values: sp.csr_matrix, measure: Measure, shrinkage: float, dense: bool) -> None:
        self.measure, self.shrinkage, self.dense = measure, shrinkage, dense
        pattern = sp.csr_matrix((np.ones_like(values.data), values.indices, values.indptr), values.shape)
        self.binary_cosine = measure == "cosine" and bool(np.all(values.data == 1.0))  # numerator = support
        self.matrices = {"values": values, "pattern": pattern}
        if measure == "cosine":
            self.norms = np.sqrt(np.asarray(values.multiply(values).sum(axis=1)).ravel()).astype(np.float32)
        else:
            self.matrices["squares"] = sp.csr_matrix((values.data**2, values.indices, values.indptr), values.shape)
        # the right-hand operand of each product: as is for sparse x dense, transposed for sparse x sparse
        self.right = self.matrices if dense else {name: m.T.tocsr() for name, m in self.matrices.items()}

    def _product(self, left: str, right: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of matrix `left` times matrix `right` transposed, a dense block."""
        chunk = self.matrices[left][start:stop]
        if self.dense:
            return np.ascontiguousarray((self.right[right] @ chunk.T.toarray()).T)
        return (chunk @ self.right[right]).toarray()

    def similarity(self, start: int, stop: int) -> np.ndarray:
        """Shrunk similarities of rows [start, stop) with every row, shape (stop - start, n_rows)."""
        numerator = self._product("values", "values", start, stop)
        if self.measure == "cosine":
            denominator = self.norms[start:stop, None] * self.norms[None, :]
        else:  # norms over the co-observed columns of each pair
            own = self._product("squares", "pattern", start, stop)
            other = self._product("pattern", "squares", start, stop)
            denominator = np.sqrt(own * other)
        similarity = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
        np.clip(similarity, -1.0, 1.0, out=similarity)
        if self.shrinkage > 0:
            support = numerator if self.binary_cosine else self._product("pattern", "pattern", start, stop)
            similarity *= support / (support + np.float32(self.shrinkage))
        return similarity


def _keep_top(block: np.ndarray, excluded: np.ndarray, n_neighbours: int, min_similarity: float) -> sp.csr_matrix:
    """The `n_neighbours` largest entries of each block row above `min_similarity`, the column
    `excluded[row]` (the row itself; -1: none) left out."""
    n_block, n_rows = block.shape
    own = np.flatnonzero(excluded >= 0)
    block[own, excluded[own]] = -np.inf
    k = min(n_neighbours, n_rows)
    columns = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_rows else np.tile(np.arange(n_rows), (n_block, 1))
    kept = np.take_along_axis(block, columns, axis=1)
    rows = np.repeat(np.arange(n_block), k).reshape(n_block, k)
    keep = kept > min_similarity
    return sp.csr_matrix((kept[keep], (rows[keep], columns[keep])), shape=(n_block, n_rows), dtype=np.float32)


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest stored entries of each row of a CSR matrix, by one argpartition of the padded rows.

    Meant for rows of bounded length (neighbour lists): the padded array is n_rows x longest row.
    """
    matrix = sp.csr_matrix(matrix)
    counts = np.diff(matrix.indptr)
    if counts.size == 0 or counts.max(initial=0) <= k:
        return matrix
    n_rows = matrix.shape[0]
    rows = np.repeat(np.arange(n_rows), counts)
    padded = np.full((n_rows, int(counts.max())), -np.inf, dtype=np.float64)
    padded[rows, np.arange(matrix.nnz) - matrix.indptr[rows]] = matrix.data
    top = np.argpartition(-padded, k - 1, axis=1)[:, :k]
    stored = np.take_along_axis(padded, top, axis=1) > -np.inf
    chosen = (matrix.indptr[:-1, None] + top)[stored]
    return sp.csr_matrix(
        (matrix.data[chosen], (np.repeat(np.arange(n_rows), k).reshape(n_rows, k)[stored], matrix.indices[chosen])),
        shape=matrix.shape,
        dtype=matrix.dtype,
    )
