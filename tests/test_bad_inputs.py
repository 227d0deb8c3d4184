"""The bad-input corpus: each broken input ends in a clear error or in exact quarantine counts,
and no row is lost or invented (source rows = rejected at parse + valid + quarantined)."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

import data_contracts.engine
import data_contracts.ratings
from data_contracts import ContractViolation
from recsys_models.exceptions import DataSourceError
from stages.ingest import ingest
from stages.validate import validate

HEADER = "user_id,item_id,rating,timestamp"
T = 1_500_000_000
GOOD_ROWS = [f"{1 + i % 20},{1 + i},{1 + i % 5}.0,{T + i}" for i in range(200)]


def run_stages(path: Path, tmp_path: Path, **validate_options) -> dict:
    """Ingest and validate `path`; return the validate manifest's counts (and check the accounting)."""
    ingest_dir = ingest(str(path), tmp_path / "ingest", None, tmp_path / "downloads")
    validated = validate(ingest_dir, tmp_path / "validate", data_docs=False, **validate_options)
    counts = json.loads((validated / "manifest.json").read_text())["counts"]
    assert counts["source_rows"] == counts["rejected_at_parse"] + counts["valid_rows"] + counts["quarantined_rows"]
    return counts


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "ratings.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def quarantine_reasons(tmp_path: Path, table: str = "quarantine") -> list[list[str]]:
    return pl.read_parquet(tmp_path / "validate" / f"{table}.parquet")["failed_expectations"].to_list()


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_bytes(b"")
    with pytest.raises(DataSourceError, match="is empty: expected a header line"):
        run_stages(tmp_path / "ratings.csv", tmp_path)


def test_header_only_stops_the_run_as_an_empty_table(tmp_path: Path) -> None:
    with pytest.raises(ContractViolation, match="ratings: table is empty"):
        run_stages(write_csv(tmp_path, []), tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["1,2,3.0"], header="user_id,item_id,rating")
    with pytest.raises(DataSourceError, match=r"lacks column\(s\) 'timestamp'"):
        run_stages(path, tmp_path)


def test_wrong_delimiter_shows_the_columns_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [row.replace(",", ";") for row in GOOD_ROWS], header=HEADER.replace(",", ";"))
    with pytest.raises(DataSourceError, match="columns found: \\['user_id;item_id;rating;timestamp'\\]"):
        run_stages(path, tmp_path)


def test_extra_column_is_ignored_and_every_row_kept(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [f"{row},note" for row in GOOD_ROWS], header=f"{HEADER},comment")
    counts = run_stages(path, tmp_path)
    assert (counts["valid_rows"], counts["quarantined_rows"], counts["rejected_at_parse"]) == (200, 0, 0)


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        pytest.param(f"abc,7,4.0,{T}", "user_id is not an integer: 'abc'", id="non-numeric-id"),
        pytest.param(f"3,7,nan,{T}", "rating is not a finite number: 'nan'", id="nan-rating"),
        pytest.param("3,7", "rating is missing", id="truncated-row"),
    ],
)
def test_unparseable_rows_are_rejected_with_their_reason(tmp_path: Path, bad_row: str, reason: str) -> None:
    counts = run_stages(write_csv(tmp_path, [*GOOD_ROWS, bad_row]), tmp_path)
    assert (counts["valid_rows"], counts["quarantined_rows"], counts["rejected_at_parse"]) == (200, 0, 1)
    rejected = pl.read_parquet(tmp_path / "ingest" / "rejected.parquet")
    assert reason in rejected["reason"][0]


def test_cut_off_file_keeps_what_it_can(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join([HEADER, *GOOD_ROWS, "3,7,4."]))  # the export stopped mid-row
    counts = run_stages(path, tmp_path)
    assert (counts["valid_rows"], counts["rejected_at_parse"]) == (200, 1)


@pytest.mark.parametrize(
    ("bad_rows", "expected"),
    [
        pytest.param([f"-4,7,4.0,{T}"], [["expect_column_values_to_be_between(user_id)"]], id="negative-id"),
        pytest.param(
            [f"3,7,0.0,{T}", f"3,8,6.0,{T}"],
            [["expect_column_values_to_be_between(rating)"]] * 2,
            id="rating-0-and-6",
        ),
        pytest.param([f"3,7,3.7,{T}"], [["expect_column_values_to_be_on_scale_step(rating)"]], id="rating-3.7"),
        pytest.param(["3,7,4.0,3786912000"], [["expect_column_values_to_be_between(timestamp)"]], id="timestamp-2090"),
        pytest.param(
            [GOOD_ROWS[0]],
            [["expect_rows_to_be_unique()", "expect_compound_columns_to_be_unique(user_id,item_id,timestamp)"]],
            id="duplicate-row",
        ),
        pytest.param(
            [GOOD_ROWS[0].replace(",1.0,", ",2.0,")],
            [["expect_compound_columns_to_be_unique(user_id,item_id,timestamp)"]],
            id="two-ratings-same-second",
        ),
    ],
)
def test_bad_values_are_quarantined_by_name(tmp_path: Path, bad_rows: list[str], expected: list[list[str]]) -> None:
    counts = run_stages(write_csv(tmp_path, [*GOOD_ROWS, *bad_rows]), tmp_path, max_quarantine_share=0.05)
    assert (counts["valid_rows"], counts["quarantined_rows"]) == (200, len(bad_rows))
    assert quarantine_reasons(tmp_path) == expected


def test_ids_missing_everywhere_stop_the_run(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [f",7,4.0,{T + i}" for i in range(5)])
    with pytest.raises((DataSourceError, ContractViolation), match="user_id"):
        run_stages(path, tmp_path)


def test_too_many_bad_rows_fail_the_run_with_a_readable_message(tmp_path: Path) -> None:
    bad = [f"3,{1000 + i},9.0,{T}" for i in range(10)]  # 10 of 210 rows = 4.8% out of range
    with pytest.raises(ContractViolation) as caught:
        run_stages(write_csv(tmp_path, [*GOOD_ROWS, *bad]), tmp_path)
    message = str(caught.value)
    assert "10 of 210 rows (4.8%) are bad, above the allowed 1.0%" in message
    assert "expect_column_values_to_be_between(rating)" in message and "outside the source's scale" in message
    assert pl.read_parquet(tmp_path / "validate" / "quarantine.parquet").height == 10  # the evidence stays


def test_gzip_file_named_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(gzip.compress(("\n".join([HEADER, *GOOD_ROWS]) + "\n").encode()))
    assert run_stages(path, tmp_path)["valid_rows"] == 200


def test_zero_byte_parquet_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ratings.parquet").write_bytes(b"")
    with pytest.raises(DataSourceError, match="cannot read .*ratings.parquet"):
        run_stages(tmp_path / "ratings.parquet", tmp_path)


def write_movielens(folder: Path, movies: bytes, ratings: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "movies.csv").write_bytes(movies)
    (folder / "ratings.csv").write_text("\n".join(["userId,movieId,rating,timestamp", *ratings]) + "\n")
    (folder / "tags.csv").write_text(f"userId,movieId,tag,timestamp\n1,1,funny,{T}\n")
    return folder


def movielens_counts(tmp_path: Path, movies: bytes, ratings: list[str]) -> dict:
    data_dir = tmp_path / "data"
    write_movielens(data_dir / "ml-latest-small", movies, ratings)
    ingest_dir = ingest("ml-latest-small", tmp_path / "ingest", data_dir, tmp_path / "downloads")
    validated = validate(ingest_dir, tmp_path / "validate", data_docs=False, max_quarantine_share=0.05)
    return json.loads((validated / "manifest.json").read_text())["counts"]


MOVIES = b"movieId,title,genres\n" + b"".join(f"{i},Film {i} (1999),Drama|Comedy\n".encode() for i in range(1, 101))
ML_RATINGS = [f"{1 + i % 30},{1 + i % 100},4.0,{T + i}" for i in range(300)]


def test_rating_for_an_unknown_movie_is_quarantined(tmp_path: Path) -> None:
    counts = movielens_counts(tmp_path, MOVIES, [*ML_RATINGS, f"5,999999,4.0,{T}"])
    assert (counts["valid_rows"], counts["quarantined_rows"]) == (300, 1)
    assert quarantine_reasons(tmp_path) == [["expect_column_values_to_be_in_set(item_id)"]]


def test_non_utf8_title_quarantines_the_movie_and_its_ratings(tmp_path: Path) -> None:
    movies = MOVIES.replace(b"Film 7 (1999)", b"Caf\xe9 7 (1999)")
    counts = movielens_counts(tmp_path, movies, ML_RATINGS)
    assert (counts["items_valid_rows"], counts["items_quarantine_rows"]) == (99, 1)
    assert quarantine_reasons(tmp_path, "items_quarantine") == [["expect_column_values_to_be_well_formed_text(title)"]]
    assert counts["quarantined_rows"] == 3  # the three ratings of movie 7
    assert counts["valid_rows"] + counts["quarantined_rows"] == 300


def test_validation_in_batches_writes_what_one_whole_batch_writes(tmp_path: Path, monkeypatch) -> None:
    """Bad rows and duplicates on both sides of batch edges: the same files, counts and reasons."""
    bad = ["3,7,9.0,1500000000", "0,8,3.0,1500000001", "4,9,2.5,100", GOOD_ROWS[3], GOOD_ROWS[150], GOOD_ROWS[3]]
    path = write_csv(tmp_path, GOOD_ROWS[:100] + bad[:3] + GOOD_ROWS[100:] + bad[3:])
    whole = run_stages(path, tmp_path / "whole", max_quarantine_share=0.05)
    monkeypatch.setattr(data_contracts.engine, "BATCH_ROWS", 7)
    batches, validate_batches = [], data_contracts.ratings.validate_batches

    def counting(contract, table, parameters, report_parameters, sink):
        def counted(valid, quarantine):
            batches.append(valid.height + quarantine.height)
            sink(valid, quarantine)

        return validate_batches(contract, table, parameters, report_parameters, counted)

    monkeypatch.setattr(data_contracts.ratings, "validate_batches", counting)
    batched = run_stages(path, tmp_path / "batched", max_quarantine_share=0.05)
    assert batches == [7] * 29 + [3]  # 206 rows
    assert batched == whole and whole["quarantined_rows"] == 6
    for table in ("ratings", "quarantine"):
        written = pl.read_parquet(tmp_path / "batched" / "validate" / f"{table}.parquet")
        assert written.equals(pl.read_parquet(tmp_path / "whole" / "validate" / f"{table}.parquet"))
    assert (
        quarantine_reasons(tmp_path / "batched")[-3:]
        == [["expect_rows_to_be_unique()", "expect_compound_columns_to_be_unique(user_id,item_id,timestamp)"]] * 3
    )
