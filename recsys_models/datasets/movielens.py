"""MovieLens readers (ml-latest-small, ml-100k), the GroupLens download, and `load_dataset`.

Ratings are read through the datasets' shipped specs (`builtin/<name>.yaml`), the one path every
source's interactions take (`spec_source.load_spec_source`), and keep every input row: a row that
does not parse goes to `RawDataset.rejected`. The side tables (items, tags) account for every
source line the same way: a row whose key does not parse, or whose quoted field spans lines (no
MovieLens field holds a line break: a stray quote merged the lines), goes to
`RawDataset.side_rejected` with all the lines it took.
"""

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import IO

import polars as pl

from recsys_models.columns import (
    GENRES,
    ITEM_ID,
    ITEMS_SCHEMA,
    TAG,
    TAGS_SCHEMA,
    TIMESTAMP,
    TITLE,
    USER_ID,
    YEAR,
)
from recsys_models.datasets.generic import (
    EXTRA_FIELDS,
    QUOTE,
    REASON,
    ROW_INDEX,
    ROW_NUMBER,
    load_ratings_file,
    problem,
    read_header,
    read_text_table,
    row_reason,
    swallowed_lines,
    too_many_fields,
)
from recsys_models.datasets.spec import built_in_spec, is_spec_path, load_spec
from recsys_models.datasets.spec_source import load_spec_source
from recsys_models.datasets.synthetic import SyntheticConfig, generate_synthetic
from recsys_models.datasets.types import RawDataset, RejectedRows
from recsys_models.exceptions import DataSourceError

logger = logging.getLogger(__name__)

ML_LATEST_SMALL = "ml-latest-small"
ML_100K = "ml-100k"
SYNTHETIC = "synthetic"
BASE_URL = "https://files.grouplens.org/datasets/movielens"
DOWNLOAD_TIMEOUT_SECONDS = 60
BACKOFF_SECONDS = 2.0  # doubled after each failed attempt
HOW_TO_FIX = (
    "Set RECSYS_DATA_DIR to a folder holding ml-latest-small/ and ml-100k/ (a local copy of "
    "GroupLens's MovieLens files), or use --dataset synthetic."
)

ML_LATEST_TAGS = {"userId": USER_ID, "movieId": ITEM_ID, "tag": TAG, "timestamp": TIMESTAMP}
ML_LATEST_MOVIES = {"movieId": ITEM_ID, "title": TITLE, "genres": GENRES}
NO_GENRES = "(no genres listed)"  # ml-latest-small's marker for an empty genre list
UNKNOWN_GENRE = "unknown"  # ml-100k's flag for the same
ML_100K_ITEM_FIELDS = [ITEM_ID, TITLE, "release_date", "video_release_date", "imdb_url"]
# A title ends with the year in parentheses, or a year range such as "(2006-2007)": keep the first year.
TITLE_WITH_YEAR = r"^(.*?)\s*\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$"


def _require_files(folder: Path, names: list[str]) -> list[Path]:
    """The paths of `names` in `folder`, or a DataSourceError naming every missing one."""
    if not folder.is_dir():
        raise DataSourceError(f"dataset folder {folder} does not exist. {HOW_TO_FIX}")
    paths = [folder / name for name in names]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DataSourceError(f"missing {', '.join(missing)}. {HOW_TO_FIX}")
    return paths


def _spanning_lines(raw: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """Per row of a side table read as strings: the data line it starts on (its `ROW_NUMBER` counts
    records, which lag behind lines after a quoted field spanning lines), and its problem when it
    spans lines."""
    breaks = pl.sum_horizontal(pl.col(pl.String).str.count_matches("\n"))
    first_line = pl.col(ROW_NUMBER) + breaks.cum_sum() - breaks
    spans = pl.when(breaks > 0).then(pl.format("a quoted field spans {} lines", breaks + 1))
    return first_line.alias(ROW_NUMBER), spans


def _parse_side_table(
    path: Path, raw: pl.DataFrame, problems: list[pl.Expr], typed: list[pl.Expr], quote_char: str | None = QUOTE
) -> tuple[pl.DataFrame, RejectedRows]:
    """Split a side table read as strings (a CSV unless `quote_char` is None) into its `typed`
    columns, on rows without `problems` nor line breaks, and the rejected rows (raw strings and
    reason), which also took the lines that their quoted fields spanning lines swallowed."""
    swallowed = swallowed_lines(path, ",", quote_char)
    first_line, spans = _spanning_lines(raw)
    checked = raw.with_columns(first_line, row_reason([*problems, spans]))
    parsed = checked.filter(pl.col(REASON).is_null()).select(typed)
    rejected = RejectedRows(
        rows=checked.filter(pl.col(REASON).is_not_null()).drop(EXTRA_FIELDS),
        lines=raw.height - parsed.height + swallowed,
    )
    if rejected.lines:
        logger.warning(
            "%s: dropped %d unparsable row(s) taking %d line(s), first: %s",
            path,
            rejected.rows.height,
            rejected.lines,
            rejected.rows.row(0, named=True),
        )
    return parsed, rejected


def _split_title(title: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(title without its year suffix, the suffix's year as Int32 or null)."""
    stripped = title.str.strip_chars()
    name = pl.coalesce(stripped.str.extract(TITLE_WITH_YEAR, 1), stripped)
    year = stripped.str.extract(TITLE_WITH_YEAR, 2).cast(pl.Int32, strict=False)
    return name, year


def _integer(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)


def _read_with_header(path: Path, columns: dict[str, str]) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """A CSV with a header as strings, `columns` (source name -> ours) renamed, and the problems
    every row of it can have: too many fields, a key column (all but title, genres and tag) that
    is missing or not an integer."""
    header = read_header(path, ",")
    missing = sorted(set(columns) - set(header))
    if missing:
        raise DataSourceError(f"{path} lacks column(s) {missing}; columns found: {header}")
    table = read_text_table(path, header, separator=",", skip_header=True)
    renamed = (pl.col(source).alias(ours) for source, ours in columns.items())
    keys = [
        problem(ours, _integer(ours), "an integer", source)
        for source, ours in columns.items()
        if ours not in (TITLE, GENRES, TAG)
    ]
    problems = [too_many_fields(len(header)), *keys]
    return table.select(pl.col(ROW_INDEX).alias(ROW_NUMBER), EXTRA_FIELDS, *renamed), problems


def _ml_latest_movies(path: Path) -> tuple[pl.DataFrame, RejectedRows]:
    table, problems = _read_with_header(path, ML_LATEST_MOVIES)
    title, year = _split_title(pl.col(TITLE))
    genres = pl.col(GENRES).str.split("|").list.eval(pl.element().filter(~pl.element().is_in(["", NO_GENRES])))
    typed = [
        _integer(ITEM_ID),
        title.alias(TITLE),
        year.alias(YEAR),
        pl.coalesce(genres, pl.lit([], dtype=pl.List(pl.String))).alias(GENRES),
    ]
    items, rejected = _parse_side_table(path, table, problems, typed)
    return items.cast(ITEMS_SCHEMA), rejected  # type: ignore[arg-type]  # polars types cast's mapping key as invariant: dict[str, DataType] is refused


def _ml_latest_tags(path: Path) -> tuple[pl.DataFrame, RejectedRows]:
    table, problems = _read_with_header(path, ML_LATEST_TAGS)
    tag_missing = pl.when(pl.col(TAG).is_null()).then(pl.lit("tag is missing"))
    typed = [_integer(USER_ID), _integer(ITEM_ID), pl.col(TAG), _integer(TIMESTAMP)]
    tags, rejected = _parse_side_table(path, table, [*problems, tag_missing], typed)
    return tags.cast(TAGS_SCHEMA), rejected  # type: ignore[arg-type]  # polars types cast's mapping key as invariant: dict[str, DataType] is refused


def load_ml_latest_small(folder: Path) -> RawDataset:
    """MovieLens "latest small": ratings.csv, movies.csv and tags.csv, ratings in half stars."""
    folder = Path(folder)
    _, movies_path, tags_path = _require_files(folder, ["ratings.csv", "movies.csv", "tags.csv"])
    ratings = load_spec_source(built_in_spec(ML_LATEST_SMALL, folder))  # builtin/ml-latest-small.yaml
    items, rejected_items = _ml_latest_movies(movies_path)
    tags, rejected_tags = _ml_latest_tags(tags_path)
    side_rejected = {"items": rejected_items, "tags": rejected_tags}
    return replace(ratings, items=items, tags=tags, side_rejected=side_rejected, source=str(folder))


def _ml_100k_genres(path: Path) -> list[str]:
    """Genre names of u.genre ("name|index" lines) in index order."""
    pairs = [line.rsplit("|", 1) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    try:
        by_index = {int(index): name for name, index in pairs}
    except ValueError as error:
        raise DataSourceError(f"{path}: expected 'name|index' lines: {error}") from error
    if sorted(by_index) != list(range(len(pairs))):
        raise DataSourceError(f"{path}: genre indices must be 0..{len(pairs) - 1}, got {sorted(by_index)}")
    return [by_index[index] for index in range(len(pairs))]


def _ml_100k_items(item_path: Path, genre_path: Path) -> tuple[pl.DataFrame, RejectedRows]:
    genre_names = _ml_100k_genres(genre_path)
    flags = [f"genre_{index}" for index in range(len(genre_names))]
    fields = [*ML_100K_ITEM_FIELDS, *flags]
    table = read_text_table(item_path, fields, separator="|", skip_header=False, encoding="latin-1", quote_char=None)
    title, title_year = _split_title(pl.col(TITLE))
    release_year = pl.col("release_date").str.extract(r"(\d{4})\s*$").cast(pl.Int32, strict=False)
    genres = pl.concat_list(
        pl.when(pl.col(flag).str.strip_chars() == "1").then(pl.lit(name))
        for flag, name in zip(flags, genre_names, strict=False)
        if name != UNKNOWN_GENRE
    ).list.drop_nulls()
    problems = [
        too_many_fields(len(fields)),
        pl.when(pl.col(flags[-1]).is_null()).then(pl.lit(f"row has fewer than {len(fields)} fields")),
        problem(ITEM_ID, _integer(ITEM_ID), "an integer"),
    ]
    year = pl.coalesce(title_year, release_year)
    typed = [_integer(ITEM_ID), title.alias(TITLE), year.alias(YEAR), genres.alias(GENRES)]
    raw = table.rename({ROW_INDEX: ROW_NUMBER})
    items, rejected = _parse_side_table(item_path, raw, problems, typed, quote_char=None)
    return items.cast(ITEMS_SCHEMA), rejected  # type: ignore[arg-type]  # polars types cast's mapping key as invariant: dict[str, DataType] is refused


def load_ml_100k(folder: Path) -> RawDataset:
    """MovieLens 100K: u.data, u.item and u.genre, ratings in whole stars, no tags.

    The year comes from the title's "(1995)" suffix, else from the release date; the "unknown"
    genre flag counts as no genre, like ml-latest-small's "(no genres listed)".
    """
    folder = Path(folder)
    _, item_path, genre_path = _require_files(folder, ["u.data", "u.item", "u.genre"])
    ratings = load_spec_source(built_in_spec(ML_100K, folder))  # builtin/ml-100k.yaml
    items, rejected_items = _ml_100k_items(item_path, genre_path)
    return replace(ratings, items=items, side_rejected={"items": rejected_items}, source=str(folder))


LOADERS = {ML_LATEST_SMALL: load_ml_latest_small, ML_100K: load_ml_100k}


def _open_url(url: str) -> IO[bytes]:
    """Open `url` for reading (the one network call; tests replace it)."""
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)


def _published_md5(url: str) -> str | None:
    """The MD5 hex digest GroupLens publishes at `url`.md5, or None (with a warning) when unavailable."""
    try:
        with _open_url(f"{url}.md5") as response:
            text = response.read().decode("ascii", errors="replace")
    except OSError as error:
        logger.warning("cannot fetch %s.md5 (%s); the archive will not be verified", url, error)
        return None
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        logger.warning("no MD5 digest in %s.md5; the archive will not be verified", url)
        return None
    return match.group(0).lower()


def _download_once(url: str, target: Path, expected_md5: str | None) -> None:
    """Stream `url` to a temporary file beside `target`, check its MD5, then rename it into place."""
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(handle, "wb") as out, _open_url(url) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if expected_md5 is not None and digest.hexdigest() != expected_md5:
            raise DataSourceError(
                f"{url} failed its checksum: MD5 {digest.hexdigest()}, published {expected_md5}. "
                f"Retry later, or: {HOW_TO_FIX}"
            )
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _download(url: str, target: Path, retries: int) -> None:
    """Download with `retries` attempts and exponential backoff on I/O errors."""
    expected_md5 = _published_md5(url)
    for attempt in range(1, retries + 1):
        try:
            _download_once(url, target, expected_md5)
            return
        except OSError as error:
            permanent = isinstance(error, urllib.error.HTTPError) and error.code < 500
            if permanent or attempt == retries:
                raise DataSourceError(
                    f"cannot download {url} (attempt {attempt} of {retries}): {error}. {HOW_TO_FIX}"
                ) from error
            delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning("download of %s failed (%s); retrying in %.0f s", url, error, delay)
            time.sleep(delay)


def _check_member(name: str, archive: Path) -> None:
    """Reject archive members that would land outside the extraction folder (zip-slip)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataSourceError(f"{archive} holds an unsafe member path {name!r}; refusing to extract it")


def _extract(archive: Path, name: str, cache_dir: Path) -> Path:
    """Extract `archive` into a staging folder, then move its `name/` folder into `cache_dir`."""
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{name}."))
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                _check_member(member, archive)
            zipped.extractall(staging)
        extracted = staging / name
        if not extracted.is_dir():
            raise DataSourceError(f"{archive} does not contain a {name}/ folder")
        os.replace(extracted, cache_dir / name)
    except zipfile.BadZipFile as error:
        raise DataSourceError(f"{archive} is not a valid zip archive: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_dir / name


def fetch_movielens(name: str, cache_dir: Path, *, retries: int = 3) -> Path:
    """The folder of MovieLens `name` under `cache_dir`, downloaded from GroupLens when absent.

    The archive is checked against the MD5 that GroupLens publishes beside it (skipped with a
    warning when that file cannot be fetched), written atomically and extracted safely.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown MovieLens data set {name!r}; expected one of {sorted(LOADERS)}")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if target.is_dir():
        logger.info("using cached %s", target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{BASE_URL}/{name}.zip"
    archive = cache_dir / f"{name}.zip"
    logger.info("downloading %s", url)
    _download(url, archive, retries)
    return _extract(archive, name, cache_dir)


def load_dataset(
    name_or_path: str,
    data_dir: Path | None,
    cache_dir: Path,
    column_map: dict[str, str] | None = None,
    seed: int = 0,
) -> RawDataset:
    """Load a data set by name ("ml-latest-small", "ml-100k", "synthetic"), a dataset spec
    (.yaml, `recsys_models.datasets.spec`) or a ratings file.

    MovieLens comes from `data_dir/<name>` when `data_dir` is given, else it is downloaded into
    `cache_dir`. "synthetic" uses the default `SyntheticConfig` with `seed`. Any other value is a
    path to a .csv, .tsv or .parquet ratings file, read with `column_map`.
    """
    if column_map and name_or_path in {*LOADERS, SYNTHETIC}:
        raise ValueError(f"column_map applies to ratings files only, not to the named data set {name_or_path!r}")
    if is_spec_path(name_or_path):
        return load_spec_source(load_spec(name_or_path))
    if name_or_path == SYNTHETIC:
        return generate_synthetic(SyntheticConfig(seed=seed))
    if name_or_path in LOADERS:
        if data_dir is None:
            folder = fetch_movielens(name_or_path, Path(cache_dir))
        else:
            folder = Path(data_dir) / name_or_path
            if not folder.is_dir():
                raise DataSourceError(f"{folder} does not exist: {data_dir} lacks {name_or_path}/. {HOW_TO_FIX}")
        return LOADERS[name_or_path](folder)
    path = Path(name_or_path)
    if not path.is_file():
        raise DataSourceError(
            f"{name_or_path!r} is neither a known data set ({', '.join([*LOADERS, SYNTHETIC])}) "
            "nor an existing ratings file (.csv, .tsv, .parquet)"
        )
    return load_ratings_file(path, column_map)
