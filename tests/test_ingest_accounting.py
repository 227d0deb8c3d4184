"""Count before you parse: every source line of ratings, items and tags is accounted for.

A stray quote in an interactions file stops the load on one line naming it; unparseable items and
tags rows are kept in the ingest stage's rejected files, counted in the manifests (in source lines,
so a quoted field that swallowed lines counts them all) and judged by the broken-share guard.
"""

import json
import re
from pathlib import Path

import polars as pl
import pytest

from data_contracts import ContractViolation
from recsys_models.exceptions import DataSourceError
from stages.ingest import ingest
from stages.validate import validate

T = 1_500_000_000
RATINGS_HEADER = "userId,movieId,rating,timestamp"
RATINGS = [f"{1 + i % 30},{1 + i % 100},{1 + i % 5}.0,{T + i}" for i in range(300)]
MOVIES = ["movieId,title,genres", '1,"American President, The (1995)",Comedy|Drama'] + [
    f"{i},Film {i} (1999),Drama" for i in range(2, 101)
]
TAGS_HEADER = "userId,movieId,tag,timestamp"
TAGS = [f"{1 + i % 30},{1 + i % 100},tag {i},{T + i}" for i in range(400)]
SPEC = """\
name: shop
path: ratings.csv
feedback: explicit
columns: {user: userId, item: movieId, rating: rating, timestamp: timestamp}
rating_scale: {min: 0.5, max: 5.0, step: 0.5}
"""


def write_lines(path: Path, lines: list[str], newline: str = "\n", last_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + (newline if last_newline else "")).encode())
    return path


def movielens(tmp_path: Path, ratings: list[str] = RATINGS, movies: list[str] = MOVIES, tags: list[str] = TAGS) -> Path:
    """An ml-latest-small folder under tmp_path/data; returns tmp_path/data (the data dir)."""
    folder = tmp_path / "data" / "ml-latest-small"
    write_lines(folder / "ratings.csv", [RATINGS_HEADER, *ratings])
    write_lines(folder / "movies.csv", movies)
    write_lines(folder / "tags.csv", [TAGS_HEADER, *tags])
    return tmp_path / "data"


def run(tmp_path: Path, source: str, data_dir: Path | None = None) -> tuple[dict, dict]:
    """Ingest and validate `source`; the ingest and validate manifests' counts."""
    ingest_dir = ingest(source, tmp_path / "ingest", data_dir, tmp_path / "downloads")
    validate_dir = validate(ingest_dir, tmp_path / "validate", data_docs=False)
    return tuple(json.loads((folder / "manifest.json").read_text())["counts"] for folder in (ingest_dir, validate_dir))


def rejected(tmp_path: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(tmp_path / "ingest" / f"{table}.parquet")


def ratings_source(tmp_path: Path, kind: str, rows: list[str]) -> tuple[str, Path | None]:
    """The same ratings as a MovieLens folder, a plain ratings file or a dataset spec's file; (source, data dir)."""
    if kind == "movielens":
        return "ml-latest-small", movielens(tmp_path, ratings=rows)
    if kind == "file":
        return str(write_lines(tmp_path / "own" / "ratings.csv", ["user_id,item_id,rating,timestamp", *rows])), None
    write_lines(tmp_path / "own" / "ratings.csv", [RATINGS_HEADER, *rows])
    return str(write_lines(tmp_path / "own" / "shop.yaml", SPEC.splitlines())), None


@pytest.mark.parametrize("kind", ["movielens", "file", "spec"])
def test_a_stray_quote_in_ratings_stops_the_load_on_one_line(tmp_path: Path, kind: str) -> None:
    rows = [*RATINGS]
    rows[100] = '7,"31,4.0,1500000100'  # opens a field that runs to the next quote, 150 lines on
    rows[250] = '8,32,4.0",1500000250'
    source, data_dir = ratings_source(tmp_path, kind, rows)
    with pytest.raises(DataSourceError) as caught:
        ingest(source, tmp_path / "ingest", data_dir, tmp_path / "downloads")
    message = str(caught.value)
    assert "\n" not in message
    assert "ratings.csv, line 102: " in message  # the header is line 1
    assert "opens a quoted field that runs past the end of its line (150 more line(s) than rows)" in message
    assert message.endswith("The line: '7,\"31,4.0,1500000100'")
    assert not (tmp_path / "ingest" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("last_newline", "effect"),
    [(True, "runs past the end of its line (1 more line(s) than rows)"), (False, "does not close where a field ends")],
)
def test_an_unterminated_quote_on_the_last_ratings_line_is_named(
    tmp_path: Path, last_newline: bool, effect: str
) -> None:
    lines = [RATINGS_HEADER, *RATINGS, '9,"33,4.0,1500000999']
    write_lines(tmp_path / "ratings.csv", lines, last_newline=last_newline)
    spec = write_lines(tmp_path / "shop.yaml", SPEC.splitlines())
    expected = rf"ratings\.csv, line 302: a '\"' opens a quoted field that {re.escape(effect)}"
    with pytest.raises(DataSourceError, match=expected):
        ingest(str(spec), tmp_path / "ingest", None, tmp_path / "downloads")


def test_a_quoted_line_shows_at_most_80_characters(tmp_path: Path) -> None:
    long_line = '7,"31,4.0,1500000100,' + "x" * 200
    source, data_dir = ratings_source(tmp_path, "file", [*RATINGS[:10], long_line, *RATINGS[10:]])
    with pytest.raises(DataSourceError) as caught:
        ingest(source, tmp_path / "ingest", data_dir, tmp_path / "downloads")
    assert str(caught.value).endswith(f"The line: {long_line[:80]!r}")


def test_good_files_with_bom_crlf_and_no_final_newline_account_for_every_line(tmp_path: Path) -> None:
    data_dir = movielens(tmp_path)
    folder = data_dir / "ml-latest-small"
    write_lines(folder / "ratings.csv", ["\ufeff" + RATINGS_HEADER, *RATINGS], newline="\r\n")
    write_lines(folder / "movies.csv", MOVIES, newline="\r\n", last_newline=False)
    write_lines(folder / "tags.csv", [TAGS_HEADER, *TAGS[:200], "", *TAGS[200:]], last_newline=False)  # a blank line
    ingested, validated = run(tmp_path, "ml-latest-small", data_dir)
    assert ingested == {
        "input_rows": 300,
        "parsed_rows": 300,
        "rejected_rows": 0,
        "items_source_rows": 100,
        "items_rejected_rows": 0,
        "tags_source_rows": 400,
        "tags_rejected_rows": 0,
    }
    assert (validated["source_rows"], validated["valid_rows"], validated["rejected_at_parse"]) == (300, 300, 0)
    for table, rows in (("items", 100), ("tags", 400)):
        accounted = [validated[f"{table}_{kind}_rows"] for kind in ("source", "valid", "quarantine", "rejected")]
        assert accounted == [rows, rows, 0, 0]
    items = pl.read_parquet(tmp_path / "ingest" / "items.parquet")
    assert items.row(0) == (1, "American President, The", 1995, ["Comedy", "Drama"])  # a quoted comma is fine
    assert rejected(tmp_path, "rejected_items").is_empty() and rejected(tmp_path, "rejected_tags").is_empty()


def test_unparseable_items_and_tags_rows_are_kept_and_counted(tmp_path: Path) -> None:
    movies = [*MOVIES, "x,Broken id (2001),Drama"]
    tags = [*TAGS[:399], f"3,x,broken,{T}"]
    ingested, validated = run(tmp_path, "ml-latest-small", movielens(tmp_path, movies=movies, tags=tags))
    assert (ingested["items_source_rows"], ingested["items_rejected_rows"]) == (101, 1)
    assert (ingested["tags_source_rows"], ingested["tags_rejected_rows"]) == (400, 1)
    assert rejected(tmp_path, "rejected_items").select("row_number", "item_id", "reason").rows() == [
        (101, "x", "movieId is not an integer: 'x'")
    ]
    assert rejected(tmp_path, "rejected_tags").select("row_number", "tag", "reason").rows() == [
        (400, "broken", "movieId is not an integer: 'x'")
    ]
    assert (validated["items_valid_rows"], validated["items_rejected_rows"]) == (100, 1)
    assert (validated["tags_valid_rows"], validated["tags_rejected_rows"]) == (399, 1)


def test_thirty_percent_bad_tags_stop_the_run_on_one_line(tmp_path: Path) -> None:
    tags = [row if i % 10 >= 3 else f"{row.split(',')[0]},n/a,lost,{T}" for i, row in enumerate(TAGS)]
    data_dir = movielens(tmp_path, tags=tags)
    with pytest.raises(ContractViolation) as caught:
        run(tmp_path, "ml-latest-small", data_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("tags: 120 of 400 rows (30.0%) are bad, above the allowed 1.0%")
    assert "120 rows could not be parsed" in message and "rejected files of the ingest stage" in message
    ingested = json.loads((tmp_path / "ingest" / "manifest.json").read_text())["counts"]
    assert (ingested["tags_source_rows"], ingested["tags_rejected_rows"]) == (400, 120)
    assert rejected(tmp_path, "rejected_tags").height == 120


@pytest.mark.parametrize(("span", "stops"), [(3, False), (10, True)])
def test_a_tag_spanning_lines_is_rejected_with_every_line_it_took(tmp_path: Path, span: int, stops: bool) -> None:
    tags = [*TAGS]
    tags[50] = '21,51,"tag 50'  # its quote closes `span` lines on
    tags[50 + span - 1] = f'end of tag 50",{T}'
    data_dir = movielens(tmp_path, tags=tags)
    if stops:  # 10 of 400 lines = 2.5%
        with pytest.raises(ContractViolation, match="tags: 10 of 400 rows .* 10 rows could not be parsed"):
            run(tmp_path, "ml-latest-small", data_dir)
        return
    ingested, validated = run(tmp_path, "ml-latest-small", data_dir)
    assert (ingested["tags_source_rows"], ingested["tags_rejected_rows"]) == (400, span)
    assert (validated["tags_valid_rows"], validated["tags_rejected_rows"]) == (400 - span, span)
    assert rejected(tmp_path, "rejected_tags").select("row_number", "reason").rows() == [
        (51, f"a quoted field spans {span} lines")
    ]


def test_an_unterminated_quote_in_movies_is_named_on_one_line(tmp_path: Path) -> None:
    movies = [*MOVIES]
    movies[40] = '40,"Film 40 (1999),Drama'
    data_dir = movielens(tmp_path, movies=movies)
    with pytest.raises(DataSourceError) as caught:
        ingest("ml-latest-small", tmp_path / "ingest", data_dir, tmp_path / "downloads")
    message = str(caught.value)
    assert "\n" not in message and "infer_schema_length" not in message
    assert "movies.csv, line 41: a '\"' opens a quoted field that does not close" in message
    assert message.endswith("The line: '40,\"Film 40 (1999),Drama'")
