"""Known-answer tests of the neighbourhood families: hand-computed similarities, predictions and rankings."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from recsys_models.interactions import Interactions
from recsys_models.knn import ItemKNN, ItemKNNConfig, UserKNN, UserKNNConfig, top_k_similarity
from recsys_models.knn.similarity import Measure, Product, top_k_per_row

# 4 users x 4 items (0 = not rated), the example every hand computation below uses
RATINGS = np.array(
    [
        [5.0, 3.0, 0.0, 1.0],
        [4.0, 0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0, 5.0],
        [0.0, 1.0, 5.0, 4.0],
    ]
)


def frame_of(matrix: np.ndarray) -> pl.DataFrame:
    users, items = np.nonzero(matrix)
    return pl.DataFrame(
        {"user_id": users, "item_id": items, "rating": matrix[users, items], "timestamp": np.arange(users.size)}
    )


def item_cosines() -> np.ndarray:
    """Cosines of the columns of RATINGS: norms^2 42, 11, 25, 43; dot products by hand."""
    s = np.zeros((4, 4))
    s[0, 1] = 16 / np.sqrt(42 * 11)  # 5*3 + 1*1
    s[0, 3] = 14 / np.sqrt(42 * 43)  # 5*1 + 4*1 + 1*5
    s[1, 2] = 5 / np.sqrt(11 * 25)  # 1*5
    s[1, 3] = 12 / np.sqrt(11 * 43)  # 3*1 + 1*5 + 1*4
    s[2, 3] = 20 / np.sqrt(25 * 43)  # 5*4
    return s + s.T


def test_cosine_matches_the_hand_computation() -> None:
    similarity = top_k_similarity(sp.csr_matrix(RATINGS.T), "cosine", n_neighbours=3)
    np.testing.assert_allclose(similarity.toarray(), item_cosines(), rtol=1e-6)
    assert similarity[0, 2] == 0 and similarity.nnz == 10  # items 0 and 2 share no user; no diagonal


def test_top_k_keeps_the_most_similar_neighbour_only() -> None:
    similarity = top_k_similarity(sp.csr_matrix(RATINGS.T), "cosine", n_neighbours=1)
    assert list(similarity.getnnz(axis=1)) == [1, 1, 1, 1]
    assert list(similarity.indices) == [1, 0, 3, 2]  # 0.744, 0.744, 0.610, 0.610


def test_shrinkage_scales_by_the_number_of_co_raters() -> None:
    similarity = top_k_similarity(sp.csr_matrix(RATINGS.T), "cosine", n_neighbours=3, shrinkage=2.0)
    co_raters = np.array([[0, 2, 0, 3], [2, 0, 1, 3], [0, 1, 0, 1], [3, 3, 1, 0]])
    np.testing.assert_allclose(similarity.toarray(), item_cosines() * co_raters / (co_raters + 2.0), rtol=1e-6)


def test_pearson_centres_on_row_means_and_sums_over_co_rated_columns() -> None:
    # a = 4, 2, -, 6 (mean 4: 0, -2, 2); b = 5, 1, 3, - (mean 3: 2, -2, 0); co-rated columns 0 and 1
    rows = sp.csr_matrix(np.array([[4.0, 2.0, 0.0, 6.0], [5.0, 1.0, 3.0, 0.0]]))
    similarity = top_k_similarity(rows, "pearson", n_neighbours=1)
    expected = (0 * 2 + -2 * -2) / np.sqrt((0 + 4) * (4 + 4))  # 1/sqrt(2); full norms would give 0.5
    np.testing.assert_allclose(similarity.toarray(), [[0, expected], [expected, 0]], rtol=1e-6)
    shrunk = top_k_similarity(rows, "pearson", n_neighbours=1, shrinkage=2.0)
    np.testing.assert_allclose(shrunk[0, 1], expected * 2 / 4, rtol=1e-6)


def test_adjusted_cosine_centres_on_column_means() -> None:
    # items x users; user means 10/3, 8/3, 8/3 -> a = 5/3, 1/3, -5/3 and b = 2/3, -2/3, -2/3
    rows = sp.csr_matrix(np.array([[5.0, 3.0, 1.0], [4.0, 2.0, 2.0], [1.0, 3.0, 5.0]]))
    similarity = top_k_similarity(rows, "adjusted_cosine", n_neighbours=2)
    np.testing.assert_allclose(similarity[0, 1], 2 / np.sqrt(51 / 9 * 12 / 9), rtol=1e-6)
    assert similarity[0, 2] == 0  # a and c are anti-correlated once centred: not a neighbour


def random_ratings(n_rows: int = 120, n_cols: int = 80, density: float = 0.1, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng)
    matrix.data = np.ceil(matrix.data * 5)
    return matrix


@pytest.mark.parametrize("product", ["sparse", "dense"])
@pytest.mark.parametrize("measure", ["cosine", "adjusted_cosine", "pearson"])
def test_chunked_similarity_equals_one_chunk(measure: Measure, product: Product) -> None:
    matrix = random_ratings()
    whole = top_k_similarity(matrix, measure, 10, shrinkage=5.0, chunk_rows=matrix.shape[0], product=product)
    for chunk_rows in (1, 7, 50):
        chunked = top_k_similarity(matrix, measure, 10, shrinkage=5.0, chunk_rows=chunk_rows, product=product)
        np.testing.assert_array_equal(chunked.indptr, whole.indptr)
        np.testing.assert_allclose(chunked.toarray(), whole.toarray(), rtol=1e-6)


@pytest.mark.parametrize("measure", ["cosine", "adjusted_cosine", "pearson"])
def test_sparse_and_dense_products_agree(measure: Measure) -> None:
    matrix = random_ratings(seed=2)
    matrix.data += np.random.default_rng(2).random(matrix.nnz)  # no ties at the top-k boundary
    sparse = top_k_similarity(matrix, measure, 10, shrinkage=5.0, chunk_rows=16, product="sparse")
    dense = top_k_similarity(matrix, measure, 10, shrinkage=5.0, chunk_rows=16, product="dense")
    np.testing.assert_allclose(dense.toarray(), sparse.toarray(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("measure", ["cosine", "pearson"])
def test_top_k_bound_keeps_each_rows_largest_positive_similarities(measure: Measure) -> None:
    matrix = random_ratings(seed=1)
    everything = top_k_similarity(matrix, measure, n_neighbours=matrix.shape[0]).toarray()
    kept = top_k_similarity(matrix, measure, n_neighbours=5, min_similarity=0.05)
    assert kept.getnnz(axis=1).max() <= 5
    assert kept.diagonal().sum() == 0 and (kept.data > 0.05).all()
    for row in range(matrix.shape[0]):
        candidates = np.sort(everything[row][everything[row] > 0.05])[::-1][:5]
        np.testing.assert_allclose(np.sort(kept[row].data)[::-1], candidates, rtol=1e-6)


def test_top_k_per_row_keeps_each_rows_largest_entries() -> None:
    matrix = random_ratings(n_rows=50, n_cols=30, density=0.3, seed=3)
    matrix.data = np.random.default_rng(3).random(matrix.nnz)
    kept = top_k_per_row(matrix, 4)
    for row in range(matrix.shape[0]):
        expected = np.sort(matrix[row].data)[::-1][:4]
        np.testing.assert_array_equal(np.sort(kept[row].data)[::-1], expected)
        assert set(kept[row].indices) <= set(matrix[row].indices)


def test_binary_data_needs_cosine() -> None:
    with pytest.raises(ValidationError, match="constant on binary data"):
        ItemKNNConfig(similarity="pearson", values="binary")
    with pytest.raises(ValidationError, match="n_neighbours"):
        UserKNNConfig(n_neighbours=0)


def test_item_knn_ranking_sums_the_similarities_of_the_users_items() -> None:
    data = Interactions.from_frame(frame_of(RATINGS))
    model = ItemKNN(ItemKNNConfig(values="binary", n_neighbours=3, shrinkage=0.0)).fit(data)
    # binary item cosines: i0 = {u0,u1,u2}, i1 = {u0,u2,u3}, i2 = {u3}, i3 = everyone
    # user 1 holds i0 and i3: i1 gets 2/3 + 3/sqrt(12), i2 gets 0 + 1/2
    scores = model.score(np.array([1]))[0]
    np.testing.assert_allclose(scores[[1, 2]], [2 / 3 + 3 / np.sqrt(12), 0.5], rtol=1e-6)
    assert model.recommend(np.array([1]), k=1)[0][0, 0] == 1


def test_item_knn_rating_prediction_by_hand() -> None:
    data = Interactions.from_frame(frame_of(RATINGS))
    s10, s13 = item_cosines()[1, [0, 3]]  # neighbours of item 1 that user 1 rated: items 0 (4 stars) and 3 (1 star)
    item_means = np.array([10 / 3, 5 / 3, 5.0, 11 / 4])
    config = ItemKNNConfig(n_neighbours=3, shrinkage=0.0, prediction="mean_centred", min_neighbours=1)
    model = ItemKNN(config).fit(data)
    expected = item_means[1] + (s10 * (4 - item_means[0]) + s13 * (1 - item_means[3])) / (s10 + s13)
    np.testing.assert_allclose(model.predict(np.array([1]), np.array([1])), [expected], rtol=1e-5)

    nearest_only = ItemKNN(config.model_copy(update={"prediction_neighbours": 1})).fit(data)
    np.testing.assert_allclose(nearest_only.predict(np.array([1]), np.array([1])), [5 / 3 + (4 - 10 / 3)], rtol=1e-5)

    baseline = ItemKNN(config.model_copy(update={"prediction": "baseline"})).fit(data)
    biases = baseline.biases
    b = biases.global_mean + biases.user[1] + biases.item
    expected = b[1] + (s10 * (4 - b[0]) + s13 * (1 - b[3])) / (s10 + s13)
    np.testing.assert_allclose(baseline.predict(np.array([1]), np.array([1])), [expected], rtol=1e-5)

    too_few = ItemKNN(config.model_copy(update={"min_neighbours": 3})).fit(data)  # only 2 rated neighbours
    np.testing.assert_allclose(too_few.predict(np.array([1]), np.array([1])), [b[1]], rtol=1e-5)


def test_user_knn_rating_prediction_by_hand() -> None:
    data = Interactions.from_frame(frame_of(RATINGS))
    # user cosines with user 1 (norms^2 35, 17, 27, 42): u0 21/sqrt(35*17), u2 9/sqrt(17*27), u3 4/sqrt(17*42)
    s = np.array([21 / np.sqrt(35 * 17), 0.0, 9 / np.sqrt(17 * 27), 4 / np.sqrt(17 * 42)])
    user_means = np.array([3.0, 2.5, 7 / 3, 10 / 3])
    config = UserKNNConfig(n_neighbours=3, shrinkage=0.0, prediction="mean_centred", min_neighbours=1)
    model = UserKNN(config).fit(data)
    np.testing.assert_allclose(model.similarity[1].toarray()[0], s, rtol=1e-6)
    # item 1 was rated 3, 1, 1 by users 0, 2, 3
    deviations = np.array([3.0, 0.0, 1.0, 1.0]) - user_means
    raters = [0, 2, 3]
    expected = user_means[1] + (s[raters] @ deviations[raters]) / s[raters].sum()
    np.testing.assert_allclose(model.predict(np.array([1]), np.array([1])), [expected], rtol=1e-5)


def test_user_knn_ranking_sums_only_the_nearest_ranking_neighbours() -> None:
    data = Interactions.from_frame(frame_of(RATINGS))
    model = UserKNN(UserKNNConfig(n_neighbours=3, ranking_neighbours=1, shrinkage=0.0)).fit(data)
    assert model.similarity[1].nnz == 3  # three kept neighbours for rating prediction
    # user 1's nearest user is user 0 (cosine 21 / sqrt(35 * 17)): the scores are user 0's ratings times it
    np.testing.assert_allclose(model.score(np.array([1]))[0], 21 / np.sqrt(35 * 17) * RATINGS[0], rtol=1e-6)


def checkerboard(n: int = 40, hold_out: float = 0.2, seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """User u likes item i iff u + i is even; a random share of those cells is held out (the answer)."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero((np.add.outer(np.arange(n), np.arange(n)) % 2) == 0)
    held = rng.random(users.size) < hold_out
    starts, counts = np.unique(users, return_index=True, return_counts=True)[1:]
    held[starts + rng.integers(counts)] = True  # every user has a held-out cell, at a random item
    kept = ~held
    frame = pl.DataFrame(
        {
            "user_id": users[kept],
            "item_id": items[kept],
            "rating": np.full(kept.sum(), 4.0),
            "timestamp": np.arange(kept.sum()),
        }
    )
    answer = np.zeros((n, n), dtype=bool)
    answer[users[held], items[held]] = True
    return Interactions.from_frame(frame), answer


@pytest.mark.parametrize("model_class", [ItemKNN, UserKNN])
def test_checkerboard_recommendations_are_the_held_out_cells(model_class: type[ItemKNN] | type[UserKNN]) -> None:
    data, answer = checkerboard()
    model = model_class(model_class.config_type(n_neighbours=10)).fit(data)
    users = np.arange(data.n_users)
    top, scores = model.recommend(users, k=1)
    assert (scores[:, 0] > 0).all()
    assert (answer[model.users.ids[users], model.items.ids[top[:, 0]]]).all()
    other_parity = (np.add.outer(users, np.arange(data.n_items)) % 2) == 1
    assert (model.score(users)[other_parity] == 0).all()
