"""The generic ratings reader: CSV/TSV/Parquet, column maps, and no input row lost."""

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys_models.columns import RATINGS_SCHEMA
from recsys_models.datasets import WHOLE_STARS
from recsys_models.datasets.generic import REJECTED_SCHEMA, load_ratings_file
from recsys_models.exceptions import DataSourceError


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def ratings(rows: list[tuple[int, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RATINGS_SCHEMA, orient="row")


def test_reads_a_clean_csv_with_exact_values_and_schema(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n1,10,4.5,100\n2,20,3,200\n")
    dataset = load_ratings_file(path)
    assert_frame_equal(dataset.ratings, ratings([(1, 10, 4.5, 100), (2, 20, 3.0, 200)]))
    assert dataset.rejected.schema == pl.Schema(REJECTED_SCHEMA)
    assert dataset.rejected.is_empty()
    assert (dataset.name, dataset.items, dataset.tags, dataset.source) == ("r", None, None, str(path))


def test_malformed_rows_are_rejected_with_raw_values_and_reasons(tmp_path: Path) -> None:
    text = (
        "user_id,item_id,rating,timestamp\n"
        "1,10,4.0,100\n"  # 1: fine
        "abc,10,4.0,100\n"  # 2: non-numeric user
        "2,20,,200\n"  # 3: empty rating
        "3,30,3.5\n"  # 4: a field short
        "4,40,3.0,400,extra\n"  # 5: a field too many
        "\n"  # blank line: not a data row
        "5,50,nan,500\n"  # 6: not a finite number
        "6,60,2.0,1.5e9\n"  # 7: timestamp not an integer
        "x,y,z,w\n"  # 8: everything wrong
        " 7 , 70 , 5.0 , 700 \n"  # 9: padded, fine
    )
    dataset = load_ratings_file(write(tmp_path, "r.csv", text))
    assert_frame_equal(dataset.ratings, ratings([(1, 10, 4.0, 100), (7, 70, 5.0, 700)]))
    expected = pl.DataFrame(
        [
            (2, "abc", "10", "4.0", "100", "user_id is not an integer: 'abc'"),
            (3, "2", "20", None, "200", "rating is missing"),
            (4, "3", "30", "3.5", None, "timestamp is missing"),
            (5, "4", "40", "3.0", "400", "row has more than 4 fields"),
            (7, "5", "50", "nan", "500", "rating is not a finite number: 'nan'"),
            (8, "6", "60", "2.0", "1.5e9", "timestamp is not an integer (Unix seconds): '1.5e9'"),
            (
                9,
                "x",
                "y",
                "z",
                "w",
                "user_id is not an integer: 'x'; item_id is not an integer: 'y'; "
                "rating is not a finite number: 'z'; timestamp is not an integer (Unix seconds): 'w'",
            ),
        ],
        schema=REJECTED_SCHEMA,
        orient="row",
    )
    assert_frame_equal(dataset.rejected, expected)
    assert len(dataset.ratings) + len(dataset.rejected) == 9  # data rows, the blank line excluded


def test_out_of_range_values_are_kept_for_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n-1,0,7.5,-5\n")
    dataset = load_ratings_file(path)
    assert_frame_equal(dataset.ratings, ratings([(-1, 0, 7.5, -5)]))
    assert dataset.rejected.is_empty()


def test_column_map_renames_and_other_columns_are_ignored(tmp_path: Path) -> None:
    text = 'comment,movieId,userId,stars,ts\n"great, really",10,1,4.5,100\n"meh",20,2,2.0,200\n'
    dataset = load_ratings_file(
        write(tmp_path, "r.csv", text),
        column_map={"userId": "user_id", "movieId": "item_id", "stars": "rating", "ts": "timestamp"},
    )
    assert_frame_equal(dataset.ratings, ratings([(1, 10, 4.5, 100), (2, 20, 2.0, 200)]))
    assert dataset.rejected.is_empty()


def test_tsv_with_windows_line_endings_and_scale_passes_through(tmp_path: Path) -> None:
    path = write(tmp_path, "r.tsv", "user_id\titem_id\trating\ttimestamp\r\n1\t10\t4\t100\r\n")
    dataset = load_ratings_file(path, scale=WHOLE_STARS)
    assert_frame_equal(dataset.ratings, ratings([(1, 10, 4.0, 100)]))
    assert dataset.scale == WHOLE_STARS


def test_parquet_with_typed_columns_datetimes_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pl.DataFrame(
        {
            "uid": [1, 2, 3],
            "iid": [10, 20, 30],
            "rating": [4.0, None, 3.5],
            "when": pl.Series(["1970-01-01 00:01:40", "1970-01-01 00:03:20", "1970-01-01 00:05:00"]).str.to_datetime(),
        }
    ).write_parquet(path)
    dataset = load_ratings_file(path, column_map={"uid": "user_id", "iid": "item_id", "when": "timestamp"})
    assert_frame_equal(dataset.ratings, ratings([(1, 10, 4.0, 100), (3, 30, 3.5, 300)]))
    assert dataset.rejected.select("row_number", "user_id", "rating", "reason").rows() == [
        (2, "2", None, "rating is missing")
    ]


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "user,item_id,rating\n1,10,4.0\n")
    with pytest.raises(DataSourceError) as caught:
        load_ratings_file(path, column_map={"user": "user_id"})
    message = str(caught.value)
    assert "'timestamp' (for timestamp)" in message
    assert "['user', 'item_id', 'rating']" in message
    assert "(for user_id)" not in message and "(for rating)" not in message


def test_unusable_sources_raise(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found"):
        load_ratings_file(tmp_path / "absent.csv")
    with pytest.raises(DataSourceError, match="unsupported ratings file type '.json'"):
        load_ratings_file(write(tmp_path, "r.json", "{}"))
    with pytest.raises(DataSourceError, match="is empty"):
        load_ratings_file(write(tmp_path, "empty.csv", ""))
    with pytest.raises(ValueError, match="column_map targets"):
        load_ratings_file(write(tmp_path, "r.csv", "a\n1\n"), column_map={"a": "score"})


def test_header_only_gives_empty_typed_frames(tmp_path: Path) -> None:
    dataset = load_ratings_file(write(tmp_path, "r.csv", "user_id,item_id,rating,timestamp\n"))
    assert dataset.ratings.is_empty() and dataset.rejected.is_empty()
    assert dataset.ratings.schema == pl.Schema(RATINGS_SCHEMA)
