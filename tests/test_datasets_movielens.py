"""MovieLens readers, the offline-tested download, and the `load_dataset` entry point."""

import hashlib
import io
import logging
import os
import urllib.error
import zipfile
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys_models.columns import ITEMS_SCHEMA, RATINGS_SCHEMA, TAGS_SCHEMA
from recsys_models.datasets import HALF_STARS, WHOLE_STARS, fetch_movielens, load_dataset, movielens
from recsys_models.datasets.generic import REJECTED_SCHEMA
from recsys_models.datasets.movielens import load_ml_100k, load_ml_latest_small
from recsys_models.exceptions import DataSourceError

ML_LATEST_RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,3,4.5,964981247
x,3,4.0,964981247
2,1,,964982931
2,2,3.0
3,2,2.5,964983000
"""
ML_LATEST_MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,"American President, The (1995)",Comedy|Drama|Romance
3,From Dusk Till Dawn 2: Texas Blood Money (1999) ,Comedy|Crime|Horror
4,Babylon 5,Sci-Fi
5,Hyena Road,(no genres listed)
6,Death Note: Desu n\u00f4to (2006\u20132007),(no genres listed)
x,Broken row,Drama
"""
ML_LATEST_TAGS = """userId,movieId,tag,timestamp
2,1,funny,1445714994
2,1,"Highly quotable, really",1445714996
2,x,dropped,1445714997
"""
GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\tabc\t1\t878887116\n244\t51\t2\t880606923\t99\n166\t346"


def flags(*genres: str) -> str:
    return "|".join("1" if name in genres else "0" for name in GENRES_100K)


U_ITEM = "\n".join(
    [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/t?Toy%20Story%20(1995)|{flags('Animation', 'Comedy')}",
        f"543|Mis\u00e9rables, Les (1995)|01-Jan-1995||http://us.imdb.com/x|{flags('Drama', 'Musical')}",
        f"267|unknown||||{flags('unknown')}",
        f"1412|Land Before Time III (1995) (V)|01-Jan-1994||http://us.imdb.com/y|{flags('Animation')}",
        f"1128|Heidi Fleiss: Hollywood Madam (1995) |09-Feb-1996||http://us.imdb.com/z|{flags('Documentary')}",
        "",
    ]
)
HOW_TO_FIX = ("RECSYS_DATA_DIR", "ml-latest-small/", "ml-100k/", "--dataset synthetic")


def real_data_dir() -> Path | None:
    """RECSYS_DATA_DIR, else ../shared/datasets beside the checkout; None when neither exists."""
    beside_checkout = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    for candidate in (os.environ.get("RECSYS_DATA_DIR"), beside_checkout):
        if candidate and all((Path(candidate) / name).is_dir() for name in ("ml-latest-small", "ml-100k")):
            return Path(candidate)
    return None


@pytest.fixture
def real_dir() -> Path:
    folder = real_data_dir()
    if folder is None:
        pytest.skip("real MovieLens absent: set RECSYS_DATA_DIR or place ../shared/datasets beside the checkout")
    return folder


def make_ml_latest_small(root: Path) -> Path:
    folder = root / "ml-latest-small"
    folder.mkdir(parents=True)
    files = {"ratings.csv": ML_LATEST_RATINGS, "movies.csv": ML_LATEST_MOVIES, "tags.csv": ML_LATEST_TAGS}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def make_ml_100k(root: Path) -> Path:
    folder = root / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    genre_lines = "".join(f"{name}|{index}\n" for index, name in enumerate(GENRES_100K))
    (folder / "u.genre").write_text(genre_lines + "\n")
    return folder


def test_ml_latest_small_ratings_keep_every_row(tmp_path: Path) -> None:
    dataset = load_ml_latest_small(make_ml_latest_small(tmp_path))
    expected = pl.DataFrame(
        [(1, 1, 4.0, 964982703), (1, 3, 4.5, 964981247), (3, 2, 2.5, 964983000)], schema=RATINGS_SCHEMA, orient="row"
    )
    assert_frame_equal(dataset.ratings, expected)
    assert dataset.rejected.schema == pl.Schema(REJECTED_SCHEMA)
    assert dataset.rejected.select("row_number", "user_id", "reason").rows() == [
        (3, "x", "userId is not an integer: 'x'"),
        (4, "2", "rating is missing"),
        (5, "2", "timestamp is missing"),
    ]
    assert len(dataset.ratings) + len(dataset.rejected) == 6
    assert (dataset.name, dataset.scale) == ("ml-latest-small", HALF_STARS)


def test_ml_latest_small_movies_and_tags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = load_ml_latest_small(make_ml_latest_small(tmp_path))
    expected_items = pl.DataFrame(
        [
            (1, "Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]),
            (2, "American President, The", 1995, ["Comedy", "Drama", "Romance"]),
            (3, "From Dusk Till Dawn 2: Texas Blood Money", 1999, ["Comedy", "Crime", "Horror"]),
            (4, "Babylon 5", None, ["Sci-Fi"]),
            (5, "Hyena Road", None, []),
            (6, "Death Note: Desu n\u00f4to", 2006, []),
        ],
        schema=ITEMS_SCHEMA,
        orient="row",
    )
    assert dataset.items is not None and dataset.tags is not None  # ml-latest-small has movies.csv and tags.csv
    assert_frame_equal(dataset.items, expected_items)
    expected_tags = pl.DataFrame(
        [(2, 1, "funny", 1445714994), (2, 1, "Highly quotable, really", 1445714996)], schema=TAGS_SCHEMA, orient="row"
    )
    assert_frame_equal(dataset.tags, expected_tags)
    dropped = [record.getMessage() for record in caplog.records if "dropped 1 unparsable row" in record.getMessage()]
    assert len(dropped) == 2  # the broken movie row and the broken tag row are reported, not silently lost


def test_ml_100k_ratings_items_and_genres(tmp_path: Path) -> None:
    dataset = load_ml_100k(make_ml_100k(tmp_path))
    expected = pl.DataFrame(
        [(196, 242, 3.0, 881250949), (186, 302, 3.0, 891717742)], schema=RATINGS_SCHEMA, orient="row"
    )
    assert_frame_equal(dataset.ratings, expected)
    assert dataset.rejected.select("row_number", "reason").rows() == [
        (3, "column_2 is not an integer: 'abc'"),
        (4, "row has more than 4 fields"),
        (5, "column_3 is missing; column_4 is missing"),
    ]
    expected_items = pl.DataFrame(
        [
            (1, "Toy Story", 1995, ["Animation", "Comedy"]),
            (543, "Mis\u00e9rables, Les", 1995, ["Drama", "Musical"]),
            (267, "unknown", None, []),  # the "unknown" genre flag means no genre
            (1412, "Land Before Time III (1995) (V)", 1994, ["Animation"]),  # no year suffix: release date
            (1128, "Heidi Fleiss: Hollywood Madam", 1995, ["Documentary"]),
        ],
        schema=ITEMS_SCHEMA,
        orient="row",
    )
    assert dataset.items is not None  # ml-100k has u.item
    assert_frame_equal(dataset.items, expected_items)
    assert (dataset.name, dataset.scale, dataset.tags) == ("ml-100k", WHOLE_STARS, None)


@pytest.mark.parametrize(("dataset", "removed"), [("ml-latest-small", "tags.csv"), ("ml-100k", "u.genre")])
def test_a_missing_file_names_itself_and_the_fix(tmp_path: Path, dataset: str, removed: str) -> None:
    folder = make_ml_latest_small(tmp_path) if dataset == "ml-latest-small" else make_ml_100k(tmp_path)
    (folder / removed).unlink()
    with pytest.raises(DataSourceError) as caught:
        movielens.LOADERS[dataset](folder)
    assert str(folder / removed) in str(caught.value)
    assert all(hint in str(caught.value) for hint in HOW_TO_FIX)


def test_a_missing_folder_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist") as caught:
        load_ml_100k(tmp_path / "nowhere")
    assert all(hint in str(caught.value) for hint in HOW_TO_FIX)


def test_load_dataset_dispatches_on_name_or_path(tmp_path: Path) -> None:
    make_ml_100k(tmp_path / "data")
    from_dir = load_dataset("ml-100k", tmp_path / "data", tmp_path / "cache")
    assert from_dir.name == "ml-100k" and len(from_dir.ratings) == 2
    synthetic = load_dataset("synthetic", None, tmp_path / "cache", seed=3)
    assert synthetic.name == "synthetic" and len(synthetic.ratings) == 100_000
    assert synthetic.ratings.equals(load_dataset("synthetic", None, tmp_path / "cache", seed=3).ratings)
    ratings_file = tmp_path / "mine.csv"
    ratings_file.write_text("uid,item_id,rating,timestamp\n1,2,3.5,4\n")
    from_file = load_dataset(str(ratings_file), None, tmp_path / "cache", column_map={"uid": "user_id"})
    assert from_file.ratings.rows() == [(1, 2, 3.5, 4)]


def test_load_dataset_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="lacks ml-latest-small/") as caught:
        load_dataset("ml-latest-small", tmp_path, tmp_path / "cache")
    assert "RECSYS_DATA_DIR" in str(caught.value)
    with pytest.raises(DataSourceError, match="neither a known data set"):
        load_dataset("ml-1m", None, tmp_path / "cache")
    with pytest.raises(ValueError, match="column_map applies to ratings files only"):
        load_dataset("synthetic", None, tmp_path, column_map={"a": "user_id"})


class FakeGroupLens:
    """Serves fixed bytes (or raises) per URL in place of the network, and records the calls."""

    def __init__(self, responses: dict[str, bytes | Exception]) -> None:
        self.responses = responses
        self.calls: list[str] = []

    def __call__(self, url: str) -> io.BytesIO:
        self.calls.append(url)
        response = self.responses.get(url, urllib.error.HTTPError(url, 404, "Not Found", None, None))  # type: ignore[arg-type]  # typeshed wants headers; None works
        if isinstance(response, Exception):
            raise response
        return io.BytesIO(response)


ZIP_URL = f"{movielens.BASE_URL}/ml-100k.zip"


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def ml_100k_zip(tmp_path: Path) -> bytes:
    folder = make_ml_100k(tmp_path / "source")
    return zipped({f"ml-100k/{path.name}": path.read_bytes() for path in folder.iterdir()})


def md5_file(data: bytes) -> bytes:
    return f"MD5 (ml-100k.zip) = {hashlib.md5(data).hexdigest()}\n".encode()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(movielens.time, "sleep", delays.append)
    return delays


def test_fetch_verifies_extracts_and_then_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = ml_100k_zip(tmp_path)
    server = FakeGroupLens({ZIP_URL: archive, f"{ZIP_URL}.md5": md5_file(archive)})
    monkeypatch.setattr(movielens, "_open_url", server)
    cache = tmp_path / "cache"
    folder = fetch_movielens("ml-100k", cache)
    assert folder == cache / "ml-100k"
    assert sorted(path.name for path in cache.iterdir()) == ["ml-100k", "ml-100k.zip"]  # no temporary leftovers
    assert (cache / "ml-100k.zip").read_bytes() == archive
    assert len(load_ml_100k(folder).ratings) == 2
    assert fetch_movielens("ml-100k", cache) == folder
    assert len(server.calls) == 2  # the second fetch found the folder and did not download


def test_load_dataset_without_data_dir_downloads_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = ml_100k_zip(tmp_path)
    monkeypatch.setattr(movielens, "_open_url", FakeGroupLens({ZIP_URL: archive, f"{ZIP_URL}.md5": md5_file(archive)}))
    dataset = load_dataset("ml-100k", None, tmp_path / "cache")
    assert dataset.items is not None  # ml-100k has u.item
    assert dataset.source == str(tmp_path / "cache" / "ml-100k") and len(dataset.items) == 5


def test_fetch_rejects_an_archive_that_fails_its_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = ml_100k_zip(tmp_path)
    server = FakeGroupLens({ZIP_URL: archive, f"{ZIP_URL}.md5": md5_file(b"something else")})
    monkeypatch.setattr(movielens, "_open_url", server)
    cache = tmp_path / "cache"
    with pytest.raises(DataSourceError, match="failed its checksum"):
        fetch_movielens("ml-100k", cache)
    assert list(cache.iterdir()) == []


def test_fetch_without_a_published_md5_warns_and_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(movielens, "_open_url", FakeGroupLens({ZIP_URL: ml_100k_zip(tmp_path)}))
    with caplog.at_level(logging.WARNING, logger=movielens.__name__):
        folder = fetch_movielens("ml-100k", tmp_path / "cache")
    assert (folder / "u.data").is_file()
    assert any("md5" in record.getMessage() and "not be verified" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("unsafe", ["../evil.txt", "ml-100k/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"])
def test_fetch_refuses_members_outside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unsafe: str) -> None:
    archive = zipped({"ml-100k/u.data": b"1\t2\t3\t4\n", unsafe: b"owned"})
    monkeypatch.setattr(movielens, "_open_url", FakeGroupLens({ZIP_URL: archive, f"{ZIP_URL}.md5": md5_file(archive)}))
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DataSourceError, match="unsafe member path"):
        fetch_movielens("ml-100k", cache)
    assert not (cache / "ml-100k").exists()
    assert not list(tmp_path.rglob("evil.txt"))
    assert sorted(path.name for path in cache.iterdir()) == ["ml-100k.zip"]  # the staging folder is gone


def test_fetch_refuses_an_archive_without_the_data_set_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = zipped({"other/u.data": b"1\t2\t3\t4\n"})
    monkeypatch.setattr(movielens, "_open_url", FakeGroupLens({ZIP_URL: archive}))
    with pytest.raises(DataSourceError, match="does not contain a ml-100k/ folder"):
        fetch_movielens("ml-100k", tmp_path / "cache")


def test_fetch_retries_with_backoff_then_says_how_to_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    unreachable = urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    server = FakeGroupLens({ZIP_URL: unreachable, f"{ZIP_URL}.md5": unreachable})
    monkeypatch.setattr(movielens, "_open_url", server)
    with pytest.raises(DataSourceError, match="attempt 3 of 3") as caught:
        fetch_movielens("ml-100k", tmp_path / "cache", retries=3)
    assert all(hint in str(caught.value) for hint in HOW_TO_FIX)
    assert server.calls.count(ZIP_URL) == 3
    assert sleeps == [2.0, 4.0]
    assert list((tmp_path / "cache").iterdir()) == []


def test_fetch_does_not_retry_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    server = FakeGroupLens({})
    monkeypatch.setattr(movielens, "_open_url", server)
    with pytest.raises(DataSourceError, match="HTTP Error 404"):
        fetch_movielens("ml-100k", tmp_path / "cache")
    assert server.calls.count(ZIP_URL) == 1 and sleeps == []


def test_fetch_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown MovieLens data set 'ml-25m'"):
        fetch_movielens("ml-25m", tmp_path)
    with pytest.raises(ValueError, match="retries must be at least 1"):
        fetch_movielens("ml-100k", tmp_path, retries=0)


@pytest.mark.real_data
def test_real_ml_latest_small(real_dir: Path) -> None:
    dataset = load_dataset("ml-latest-small", real_dir, real_dir / "unused-cache")
    # 100,836 GroupLens ratings plus one row this copy adds (user 999, item 999999, no newline at the end);
    # it parses, so it is here, and validation quarantines its unknown item.
    assert len(dataset.ratings) == 100_837
    assert dataset.rejected.is_empty()
    assert dataset.ratings.schema == pl.Schema(RATINGS_SCHEMA)
    assert dataset.items is not None and dataset.tags is not None  # ml-latest-small has movies.csv and tags.csv
    assert dataset.items.schema == pl.Schema(ITEMS_SCHEMA) and len(dataset.items) == 9_742
    assert dataset.tags.schema == pl.Schema(TAGS_SCHEMA) and len(dataset.tags) == 3_683
    assert dataset.items.row(0) == (1, "Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"])
    assert dataset.items["year"].null_count() == 12  # titles such as "Babylon 5" carry no year
    assert (dataset.items["genres"].list.len() == 0).sum() == 34  # "(no genres listed)"
    assert not (real_dir / "unused-cache").exists()


@pytest.mark.real_data
def test_real_ml_100k(real_dir: Path) -> None:
    dataset = load_dataset("ml-100k", real_dir, real_dir / "unused-cache")
    assert len(dataset.ratings) == 99_999  # this copy lacks one of the official 100,000 rows
    assert dataset.rejected.is_empty()
    assert dataset.ratings.schema == pl.Schema(RATINGS_SCHEMA)
    assert dataset.items is not None  # ml-100k has u.item
    assert dataset.items.schema == pl.Schema(ITEMS_SCHEMA) and len(dataset.items) == 1_682
    assert dataset.ratings["user_id"].n_unique() == 943
    latin_1_title = dataset.items.filter(pl.col("item_id") == 543).row(0)
    assert latin_1_title == (543, "Mis\u00e9rables, Les", 1995, ["Drama", "Musical"])
    assert dataset.items["year"].null_count() == 1  # item 267, "unknown"


@pytest.mark.real_data
def test_real_ratings_csv_through_the_generic_reader(real_dir: Path) -> None:
    path = real_dir / "ml-latest-small" / "ratings.csv"
    column_map = {"userId": "user_id", "movieId": "item_id"}
    dataset = load_dataset(str(path), None, real_dir / "unused-cache", column_map=column_map)
    assert len(dataset.ratings) == 100_837 and dataset.rejected.is_empty()
    assert dataset.ratings.schema == pl.Schema(RATINGS_SCHEMA)
