"""Dataset specs (YAML): spec errors, bad event logs through ingest + validate, time formats,
string ids, explicit scales, and how repeated (user, item) rows combine."""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from data_contracts import ContractViolation
from recsys_models import ids
from recsys_models.aggregation import combine_repeats
from recsys_models.datasets.sources import describe_source
from recsys_models.datasets.spec import SpecError, load_spec
from recsys_models.datasets.spec_source import load_spec_source
from recsys_models.exceptions import DataSourceError
from stages.ingest import ingest
from stages.validate import validate

EVENT_IN_SET = "expect_column_values_to_be_in_set(event)"
T0 = int(datetime(2024, 1, 1, 10, tzinfo=UTC).timestamp())

IMPLICIT = """\
name: shop-events
path: events.csv
feedback: implicit
columns: {user: visitor, item: sku, timestamp: when, event: kind, value: qty}
timestamp_format: iso8601
event_weights: {view: 1, purchase: 5}
repeats: sum
"""
EXPLICIT = """\
name: film-scores
path: scores.csv
feedback: explicit
columns: {user: critic, item: film, timestamp: at, rating: score}
rating_scale: {min: 1, max: 10, step: 1}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def events_csv(folder: Path, rows: list[tuple], name: str = "events.csv") -> Path:
    lines = ["visitor,sku,when,kind,qty"] + [",".join(str(field) for field in row) for row in rows]
    return write(folder, name, "\n".join(lines) + "\n")


def good_events(n: int) -> list[tuple]:
    """n distinct well-formed rows: 20 users x many items, ISO times a minute apart."""
    return [
        (
            f"u{index % 20}",
            f"SKU-{index:05d}",
            f"2024-01-01T10:{index % 60:02d}:00Z",
            ("view", "purchase")[index % 2],
            1,
        )
        for index in range(n)
    ]


def run_stages(tmp_path: Path, spec_text: str, **validate_options) -> tuple[Path, Path]:
    spec = write(tmp_path, "spec.yaml", spec_text)
    ingest_dir, validate_dir = tmp_path / "ingest", tmp_path / "validate"
    ingest(str(spec), ingest_dir, data_dir=None, cache_dir=tmp_path / "cache")
    validate(ingest_dir, validate_dir, data_docs=False, **validate_options)
    return ingest_dir, validate_dir


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# 1. Bad specs: one SpecError line naming the key ------------------------------------------------


def spec_error(tmp_path: Path, text: str, data: str = "visitor,sku,when,kind,qty\nu1,a,2024-01-01,view,1\n") -> str:
    write(tmp_path, "events.csv", data)
    write(tmp_path, "scores.csv", "critic,film,at,score\nc1,f1,1700000000,7\n")
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, "spec.yaml", text))
    message = str(caught.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("columns:", "colums: {}\ncolumns:"), "unknown key 'colums'"),
        (("value: qty}", "value: qty, rating_col: x}"), "unknown key 'columns.rating_col'"),
        (("feedback: implicit", "feedback: implicitt"), "feedback: "),
        (("timestamp_format: iso8601", "timestamp_format: unix_minutes"), "timestamp_format: "),
        (("repeats: sum", "repeats: mean"), "repeats: "),
        (("repeats: sum", "rating_scale: {min: 1, max: 5, step: 1}"), "rating_scale: "),
        (("event_weights: {view: 1, purchase: 5}\n", ""), "event_weights"),
        (("repeats: sum", "repeats: sum\nprotocol: temporal-users"), "protocol: "),
    ],
)
def test_bad_implicit_spec_is_one_line_naming_the_key(tmp_path: Path, edit: tuple[str, str], named: str) -> None:
    message = spec_error(tmp_path, IMPLICIT.replace(*edit))
    assert named in message, message


def test_a_spec_names_the_protocol_its_runs_use_unless_a_run_says_otherwise(tmp_path: Path) -> None:
    from stages.split import split_settings

    events_csv(tmp_path, good_events(4))
    plain = write(tmp_path, "plain.yaml", IMPLICIT)
    named = write(tmp_path, "named.yaml", IMPLICIT + "protocol: leave-one-out\n")
    assert describe_source(str(plain)).protocol == "temporal-user"
    source = describe_source(str(named))
    assert split_settings(source, None, train_fraction=0.8, seed=42).protocol == "leave-one-out"
    assert split_settings(source, "temporal-global", train_fraction=0.8, seed=42).protocol == "temporal-global"


def test_a_missing_ratings_file_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"ratings\.csv: no such file") as caught:
        describe_source(str(tmp_path / "ratings.csv"))
    assert "\n" not in str(caught.value)


def test_explicit_spec_without_scale_and_non_mapping_and_missing_file(tmp_path: Path) -> None:
    assert "rating_scale" in spec_error(tmp_path, EXPLICIT.replace("rating_scale: {min: 1, max: 10, step: 1}\n", ""))
    assert "mapping" in spec_error(tmp_path, "- just\n- a list\n")
    assert "mapping" in spec_error(tmp_path, "just a string\n")
    assert "not valid YAML" in spec_error(tmp_path, "name: x\n  bad: [\n")
    message = spec_error(tmp_path, IMPLICIT.replace("path: events.csv", "path: nowhere.csv"))
    assert "path: file not found" in message and "nowhere.csv" in message
    with pytest.raises(SpecError, match="dataset spec not found"):
        load_spec(tmp_path / "absent.yaml")


def test_missing_role_column_names_the_role_and_the_column(tmp_path: Path) -> None:
    write(tmp_path, "events.csv", "visiter,sku,when,kind,qty\nu1,a,2024-01-01,view,1\n")
    spec = write(tmp_path, "spec.yaml", IMPLICIT)
    load_spec(spec)  # the spec itself is fine; the file's header is not
    with pytest.raises(DataSourceError) as caught:
        describe_source(str(spec))
    message = str(caught.value)
    assert "\n" not in message and "columns.user" in message and "'visitor'" in message, message


# 2. Bad event logs through ingest + validate, every row accounted for -----------------------------


def test_bad_rows_are_quarantined_or_rejected_and_every_row_is_counted(tmp_path: Path) -> None:
    rows = good_events(400)
    rows[10] = ("u1", "SKU-00010", "2024-01-01T10:10:00Z", "wishlist", 1)  # unknown event type
    rows[20] = ("u2", "SKU-00020", "not-a-time", "view", 1)  # unparseable ISO time
    rows[30] = ("u3", "SKU-00030", "2024-01-01T10:30:00Z", "view", "")  # empty value
    events_csv(tmp_path, rows)
    ingest_dir, validate_dir = run_stages(tmp_path, IMPLICIT)

    rejected = pl.read_parquet(ingest_dir / "rejected.parquet")
    assert rejected.height == 2
    reasons = dict(zip(rejected["row_number"].to_list(), rejected["reason"].to_list(), strict=True))
    assert "when" in reasons[21] and "ISO 8601" in reasons[21], reasons
    assert reasons[31] == "qty is missing", reasons

    quarantine = pl.read_parquet(validate_dir / "quarantine.parquet")
    assert quarantine.height == 1
    assert EVENT_IN_SET in quarantine["failed_expectations"][0].to_list()
    assert quarantine["event"][0] == "wishlist"
    report = json.loads((validate_dir / "validation_report.json").read_text())
    entry = next(e for e in report["ratings"]["expectations"] if e["name"] == EVENT_IN_SET)
    assert entry["unexpected_count"] == 1 and entry["reason"]

    counts = manifest(validate_dir)["counts"]
    assert manifest(ingest_dir)["counts"]["input_rows"] == counts["source_rows"] == 400
    assert (counts["rejected_at_parse"], counts["valid_rows"], counts["quarantined_rows"]) == (2, 397, 1)
    assert counts["source_rows"] == counts["valid_rows"] + counts["quarantined_rows"] + counts["rejected_at_parse"]
    assert pl.read_parquet(validate_dir / "ratings.parquet").height == 397
    assert counts["interaction_rows"] == pl.read_parquet(validate_dir / "interactions.parquet").height
    coded = pl.read_parquet(validate_dir / "ids.parquet")
    assert {"u1", "SKU-00000"} <= set(coded["raw"].to_list())


def test_too_many_bad_rows_fail_validation_but_leave_the_quarantine(tmp_path: Path) -> None:
    rows = good_events(100)
    for index in range(0, 100, 25):  # 4% unknown events: above the default 1% guard
        rows[index] = (*rows[index][:3], "wishlist", 1)
    events_csv(tmp_path, rows)
    with pytest.raises(ContractViolation, match="ratings"):
        run_stages(tmp_path, IMPLICIT)
    quarantine = pl.read_parquet(tmp_path / "validate" / "quarantine.parquet")
    assert quarantine.height == 4
    assert not (tmp_path / "validate" / "manifest.json").exists()


def test_quarantine_share_can_be_raised(tmp_path: Path) -> None:
    rows = good_events(20)
    rows[0] = (*rows[0][:3], "wishlist", 1)
    events_csv(tmp_path, rows)
    _, validate_dir = run_stages(tmp_path, IMPLICIT, max_quarantine_share=0.5)
    assert manifest(validate_dir)["counts"]["quarantined_rows"] == 1


# 3. Time formats ----------------------------------------------------------------------------------


def parsed_seconds(tmp_path: Path, time_format: str, times: list[str]) -> list[int]:
    rows = [(f"u{index}", "SKU-1", time, "view", 1) for index, time in enumerate(times)]
    events_csv(tmp_path, rows)
    text = IMPLICIT.replace("timestamp_format: iso8601", f"timestamp_format: {time_format}")
    dataset = load_spec_source(load_spec(write(tmp_path, "spec.yaml", text)))
    assert dataset.rejected.height == 0, dataset.rejected
    return dataset.ratings["timestamp"].to_list()


@pytest.mark.parametrize(
    ("time_format", "times", "expected"),
    [
        ("unix_s", [str(T0)], T0),
        ("unix_ms", [str(T0 * 1000 + 999)], T0),
        ("unix_us", [str(T0 * 1_000_000 + 5)], T0),
        ("iso8601", ["2024-01-01T10:00:00Z", "2024-01-01T12:00:00+02:00", "2024-01-01 10:00:00"], T0),
        ("iso8601", ["2024-01-01T10:00:00.250Z", "2024-01-01T10:00"], T0),
        ("iso8601", ["2024-01-01"], T0 - 10 * 3600),
    ],
)
def test_time_formats_give_the_same_unix_seconds(
    tmp_path: Path, time_format: str, times: list[str], expected: int
) -> None:
    assert parsed_seconds(tmp_path, time_format, times) == [expected] * len(times)


def test_parquet_datetime_column_needs_no_format(tmp_path: Path) -> None:
    moment = datetime(2024, 1, 1, 10)
    pl.DataFrame(
        {
            "visitor": ["u1", "7"],
            "sku": ["SKU-1", "SKU-2"],
            "when": [moment, moment],
            "kind": ["view", "purchase"],
            "qty": [1.0, 2.0],
        }
    ).write_parquet(tmp_path / "events.parquet")
    text = IMPLICIT.replace("events.csv", "events.parquet").replace("timestamp_format: iso8601\n", "")
    dataset = load_spec_source(load_spec(write(tmp_path, "spec.yaml", text)))
    assert dataset.rejected.height == 0
    assert dataset.ratings["timestamp"].to_list() == [T0, T0]
    assert sorted(dataset.ratings["rating"].to_list()) == [1.0, 10.0]  # view 1 x 1, purchase 5 x 2


# 4. Ids -------------------------------------------------------------------------------------------


def test_text_and_integer_ids_coexist_and_decode(tmp_path: Path) -> None:
    texts = pl.Series("user_id", ["u196", "42", "SKU-00242", "042", "0", None])
    first, second = ids.encode_texts(texts), ids.encode_texts(texts.reverse()).reverse()
    assert first.dtype == pl.Int64 and first.to_list() == second.to_list()
    codes = first.to_list()
    assert codes[1] == 42 and codes[4] == 0 and codes[5] is None
    assert codes[3] != 42 and all(code >= 2**62 for code in (codes[0], codes[2], codes[3]))
    assert codes[0] == ids.text_code("u196")

    table = ids.id_table(texts, "user")
    assert sorted(table["raw"].to_list()) == ["042", "SKU-00242", "u196"]
    frame = pl.DataFrame({"user_id": codes[:5]})
    decoded = ids.decode_column(frame, "user_id", table, "user")
    assert decoded["user_id"].to_list() == ["u196", "42", "SKU-00242", "042", "0"]

    events_csv(tmp_path, [("u196", "SKU-00242", T0, "view", 1), ("196", "242", T0, "view", 1)])
    dataset = load_spec_source(load_spec(write(tmp_path, "spec.yaml", IMPLICIT.replace("iso8601", "unix_s"))))
    assert dataset.ratings.sort("user_id")["user_id"].to_list() == [196, ids.text_code("u196")]
    assert set(dataset.ratings["item_id"].to_list()) == {242, ids.text_code("SKU-00242")}


# 5. Explicit scales -------------------------------------------------------------------------------


def test_explicit_one_to_ten_scale_quarantines_off_scale_and_off_step(tmp_path: Path) -> None:
    scores = [7, 11, 2.5, 10, 1, 8]
    lines = ["critic,film,at,score"] + [f"c{i},film-{i},{T0 + i},{score}" for i, score in enumerate(scores)]
    write(tmp_path, "scores.csv", "\n".join(lines) + "\n")
    _, validate_dir = run_stages(tmp_path, EXPLICIT, max_quarantine_share=0.5)
    quarantine = pl.read_parquet(validate_dir / "quarantine.parquet").sort("rating")
    assert quarantine["rating"].to_list() == [2.5, 11.0]
    assert "expect_column_values_to_be_on_scale_step(rating)" in quarantine["failed_expectations"][0].to_list()
    assert "expect_column_values_to_be_between(rating)" in quarantine["failed_expectations"][1].to_list()
    assert sorted(pl.read_parquet(validate_dir / "ratings.parquet")["rating"].to_list()) == [1.0, 7.0, 8.0, 10.0]
    counts = manifest(validate_dir)["counts"]
    assert (counts["valid_rows"], counts["quarantined_rows"], counts["rejected_at_parse"]) == (4, 2, 0)


def test_default_relevance_threshold_is_top_quarter_of_scale(tmp_path: Path) -> None:
    write(tmp_path, "scores.csv", "critic,film,at,score\nc1,f1,1700000000,7\n")
    ten = load_spec(write(tmp_path, "ten.yaml", EXPLICIT))
    assert ten.default_min_rating() == 8 and ten.feedback_settings.relevance_threshold == 8
    assert ten.feedback_settings.repeats == "last" and ten.feedback_settings.kind == "explicit"
    half_scale = EXPLICIT.replace("{min: 1, max: 10, step: 1}", "{min: 0.5, max: 5, step: 0.5}")
    half = load_spec(write(tmp_path, "half.yaml", half_scale))
    assert half.feedback_settings.relevance_threshold == 4
    percent_scale = EXPLICIT.replace("{min: 1, max: 10, step: 1}", "{min: 0, max: 100, step: 1}")
    percent = load_spec(write(tmp_path, "pct.yaml", percent_scale))
    assert percent.feedback_settings.relevance_threshold == 75  # the top quarter, on the grid
    own = load_spec(write(tmp_path, "own.yaml", EXPLICIT + "relevant: {min_rating: 6}\n"))
    assert own.feedback_settings.relevance_threshold == 6


# 6. combine_repeats -------------------------------------------------------------------------------

REPEATS = pl.DataFrame(
    {  # user 1 / item 10: three rows (two at time 5); user 1 / item 20 once; user 2 / item 10 twice (later row first)
        "user_id": [1, 1, 1, 1, 2, 2],
        "item_id": [10, 10, 10, 20, 10, 10],
        "rating": [2.0, 5.0, 3.0, 4.0, 1.0, 6.0],
        "timestamp": [5, 5, 9, 7, 8, 3],
    }
)


@pytest.mark.parametrize(
    ("rule", "ratings", "times"),
    [
        ("sum", [10.0, 4.0, 7.0], [5, 7, 3]),
        ("max", [5.0, 4.0, 6.0], [5, 7, 3]),
        ("count", [3.0, 1.0, 2.0], [5, 7, 3]),
        ("first", [2.0, 4.0, 6.0], [5, 7, 3]),  # tie at time 5: the earlier table row
        ("last", [3.0, 4.0, 1.0], [9, 7, 8]),
    ],
)
def test_combine_repeats_rules(rule: str, ratings: list[float], times: list[int]) -> None:
    combined = combine_repeats(REPEATS.lazy(), rule).collect()  # type: ignore[arg-type]
    assert combined.columns == ["user_id", "item_id", "rating", "timestamp"]
    assert combined["user_id"].to_list() == [1, 1, 2] and combined["item_id"].to_list() == [10, 20, 10]
    assert combined["rating"].to_list() == ratings and combined["timestamp"].to_list() == times


def test_combine_repeats_per_time_keeps_separate_times() -> None:
    summed = combine_repeats(REPEATS.lazy(), "sum", per_time=True).collect()
    assert summed.rows() == [(1, 10, 7.0, 5), (1, 10, 3.0, 9), (1, 20, 4.0, 7), (2, 10, 6.0, 3), (2, 10, 1.0, 8)]
    last = combine_repeats(REPEATS.lazy(), "last", per_time=True).collect()
    assert last.rows()[0] == (1, 10, 5.0, 5)  # tie at time 5: the later table row


# 7. Repeats through validate ----------------------------------------------------------------------


def test_rerated_pair_keeps_latest_rating_in_interactions(tmp_path: Path) -> None:
    rows = [("c1", "f1", T0 + 100, 9), ("c1", "f1", T0, 3), ("c1", "f2", T0, 5), ("c2", "f1", T0, 6)]
    write(tmp_path, "scores.csv", "critic,film,at,score\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    _, validate_dir = run_stages(tmp_path, EXPLICIT)
    counts = manifest(validate_dir)["counts"]
    assert (counts["valid_rows"], counts["quarantined_rows"], counts["interaction_rows"]) == (4, 0, 3)
    interactions = pl.read_parquet(validate_dir / "interactions.parquet")
    pair = interactions.filter((pl.col("user_id") == ids.text_code("c1")) & (pl.col("item_id") == ids.text_code("f1")))
    assert pair.rows() == [(ids.text_code("c1"), ids.text_code("f1"), 9.0, T0 + 100)]


def test_item_table_gives_categories_titles_and_the_interactions_ids(tmp_path: Path) -> None:
    pl.DataFrame({"visitor": ["u1", "u2"], "sku": ["SKU-1", "SKU-2"], "when": ["2024-01-01", "2024-01-02"]}).write_csv(
        tmp_path / "events.csv"
    )
    pl.DataFrame(
        {
            "sku": ["SKU-1", "SKU-2", "SKU-3"],
            "name": ["Red shoe", "Blue hat", "Green sock"],
            "brand": ["Acme", "Acme", "Bolt"],
            "tags": ["a|b", "c", ""],
        }
    ).write_csv(tmp_path / "items.csv")
    (tmp_path / "s.yaml").write_text(
        "name: s\npath: events.csv\nfeedback: implicit\ncolumns: {user: visitor, item: sku, timestamp: when}\n"
        "timestamp_format: iso8601\nitems: {path: items.csv, title: name, list_separator: '|'}\n"
    )
    dataset = load_spec_source(load_spec(tmp_path / "s.yaml"))
    items = dataset.items
    assert items is not None and items["title"].to_list() == ["Red shoe", "Blue hat", "Green sock"]
    assert items["genres"].to_list()[0] == ["brand=Acme", "tags=a", "tags=b"]
    assert set(items["item_id"].to_list()[:2]) == set(dataset.ratings["item_id"].to_list())  # same id mapping
    assert dataset.ids is not None  # a spec source with string ids keeps their mapping
    assert "SKU-3" in dataset.ids.filter(pl.col("role") == "item")["raw"].to_list()  # an item never interacted with
    (tmp_path / "bad.yaml").write_text(
        "name: s\npath: events.csv\nfeedback: implicit\ncolumns: {user: visitor, item: sku, timestamp: when}\n"
        "timestamp_format: iso8601\nitems: {path: items.csv, title: label}\n"
    )
    with pytest.raises(DataSourceError, match=r"items.title = 'label' is not a column"):
        load_spec_source(load_spec(tmp_path / "bad.yaml"))
