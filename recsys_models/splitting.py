"""Deterministic split strategies, exactly as ../shared/PROTOCOLS.md defines them, and the facts a
split manifest reports (sizes, cut-offs, cold counts, leakage checks).

Strategies (one function each): `temporal_global_split` (P1/P2, by fraction or by date),
`temporal_user_split` (P4, each user's last fraction or last N), `leave_one_out_split` (P3),
`held_out_users_split` (P5: whole users kept out of training, each with a history given at
scoring time) and `rolling_splits` (backtest windows). `with_validation` cuts the validation tail from a split's
train part by the split's own rule (never from test); `protocol_split` does both for a
`SplitSettings`. Global cuts are positions in the sorted timestamps (`global_cut`,
`rolling_windows`), so `recsys_models.split_writer` applies the same rules to a table read in
batches; `split_report` and the checks read lazy scans of written parts as well as frames.

Cold-start rule: see `COLD_RULE`; cold rows are counted here and handled by the evaluation.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recsys_models.columns import ITEM_ID, TIMESTAMP, USER_ID
from recsys_models.datasets.spec import Feedback, ProtocolName

GLOBAL_ORDER = [TIMESTAMP, USER_ID, ITEM_ID]  # ties in time are frequent in MovieLens
USER_ORDER = [USER_ID, TIMESTAMP, ITEM_ID]  # within a user: (timestamp, item_id)
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)
PART_NAMES = ("train", "valid", "test")
HELD_OUT_USERS = "held-out-users"
TEST_HISTORY = "test_history"
"""P5's fourth part: the held-out users' first interactions, given at scoring time, never trained on."""
HELD_OUT_SHARE = 0.1  # P5: share of the eligible users held out ...
MIN_HELD_OUT_USERS = 50  # ... and at least this many (all eligible users when fewer)
HISTORY_SHARE = 0.8  # P5: a held-out user's first floor(0.8 m) interactions are their history
ROLLING = "rolling"
DEFAULT_TRAIN_FRACTION = 0.8
DEFAULT_TEST_FRACTION = 0.2
SECONDS_PER_DAY = 86_400
# The check each protocol must pass: global splits judge every test row against all training
# data; per-user splits (which mix time across users by design) against that user's own history.
LeakageScope = Literal["global", "user"]
LEAKAGE_SCOPE: dict[str, LeakageScope] = {
    "temporal-global": "global",
    ROLLING: "global",
    "temporal-user": "user",
    "leave-one-out": "user",
    HELD_OUT_USERS: "user",
}
COLD_RULE = (
    "cold rows (user or item absent from train + valid) stay in test.parquet and are counted; "
    "rating metrics skip them; ranking skips cold users (counted) and keeps relevant items absent "
    "from train in the denominators as unreachable"
)
Frame = pl.DataFrame | pl.LazyFrame  # the report and checks read either (a lazy scan of written parts)
_MIN_HELD_OUT_LENGTH = 5  # P5: users with fewer interactions are never held out (P4's minimum)
_POSITION = "_position_in_user"
_USER_LENGTH = "_user_length"
_SECOND = "_second"


@dataclass(frozen=True)
class Split:
    """Train and test rows of one protocol (plus the validation tail once cut), and their facts.

    `train` excludes `valid`; a model learns from both (`history`) and is judged on `test`. Under
    P5, `test_history` holds the held-out users' histories, which the model is given when it scores them.
    """

    protocol: str
    train: pl.DataFrame
    test: pl.DataFrame
    details: dict[str, Any]
    valid: pl.DataFrame | None = None
    test_history: pl.DataFrame | None = None

    @property
    def parts(self) -> dict[str, pl.DataFrame]:
        """Train, valid (empty when not cut), test and (P5) test_history, by name, as `split_report`
        and the split contract take them."""
        parts = {
            "train": self.train,
            "valid": self.train.clear() if self.valid is None else self.valid,
            "test": self.test,
        }
        return parts | ({} if self.test_history is None else {TEST_HISTORY: self.test_history})

    @property
    def history(self) -> pl.DataFrame:
        """Everything before the test part: train plus the validation tail, in global order."""
        return self.train if self.valid is None else pl.concat([self.train, self.valid]).sort(GLOBAL_ORDER)


class SplitSettings(BaseModel):
    """A protocol and its parameters; fields that do not apply to the protocol must stay unset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: ProtocolName = Field(
        default="temporal-global", description="temporal-global = P1/P2, temporal-user = P4, leave-one-out = P3."
    )
    train_fraction: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="temporal-global: share of rows before the cut-off (default 0.8)."
    )
    cutoff: datetime | None = Field(
        default=None, description="temporal-global: date cut-off instead of a fraction (naive = UTC)."
    )
    test_fraction: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="temporal-user: share of each user's last ratings (default 0.2)."
    )
    test_count: PositiveInt | None = Field(default=None, description="temporal-user: each user's last N instead.")
    min_ratings: PositiveInt = Field(default=5, description="temporal-user: fewer ratings keep a user in train.")
    min_interactions: int = Field(default=3, ge=3, description="leave-one-out: fewer keep a user in train.")
    seed: int | None = Field(default=None, description="held-out-users: which users are held out (default 0).")
    valid_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of train cut as the validation tail, by the same rule."
    )
    feedback: Feedback = Field(
        default_factory=Feedback, description="The source's feedback semantics (its dataset spec), for later stages."
    )

    @model_validator(mode="after")
    def _parameters_match_the_protocol(self) -> "SplitSettings":
        own = {
            "temporal-global": {"train_fraction", "cutoff"},
            "temporal-user": {"test_fraction", "test_count"},
            "leave-one-out": set(),
            HELD_OUT_USERS: {"seed"},
        }[self.protocol]
        stray = sorted(
            name
            for name in ("train_fraction", "cutoff", "test_fraction", "test_count", "seed")
            if getattr(self, name) is not None and name not in own
        )
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to protocol {self.protocol!r}")
        if self.train_fraction is not None and self.cutoff is not None:
            raise ValueError("give train_fraction or cutoff, not both")
        if self.test_fraction is not None and self.test_count is not None:
            raise ValueError("give test_fraction or test_count, not both")
        return self


def temporal_global_split(
    ratings: pl.DataFrame, train_fraction: float | None = None, cutoff: datetime | int | None = None
) -> Split:
    """P1/P2: order by (timestamp, user_id, item_id); train is the first floor(fraction * n) rows,
    or, with `cutoff` (a datetime, naive = UTC, or Unix seconds), every row strictly before it.

    Without either, the fraction is 0.8.
    """
    ordered = ratings.sort(GLOBAL_ORDER)
    n_train, details = global_cut(ordered[TIMESTAMP].to_numpy(), train_fraction, cutoff)
    return Split(protocol="temporal-global", train=ordered.head(n_train), test=ordered.slice(n_train), details=details)


def global_cut(
    timestamps: np.ndarray, train_fraction: float | None = None, cutoff: datetime | int | None = None
) -> tuple[int, dict[str, Any]]:
    """How many rows of the global order train takes, and the split's details, from the sorted
    timestamps alone (see `temporal_global_split` for the rule)."""
    if train_fraction is not None and cutoff is not None:
        raise ValueError("give train_fraction or cutoff, not both")
    if cutoff is None:
        train_fraction = DEFAULT_TRAIN_FRACTION if train_fraction is None else train_fraction
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
        n_train = math.floor(train_fraction * len(timestamps))
        rule: dict[str, Any] = {"train_fraction": train_fraction}
    else:
        cutoff_seconds = unix_seconds(cutoff)
        n_train = int(np.searchsorted(timestamps, cutoff_seconds, side="left"))
        rule = {"cutoff": iso_utc(cutoff_seconds)}
    if n_train == 0 or n_train == len(timestamps):
        raise ValueError(f"the cut-off {rule} leaves train or test empty ({len(timestamps)} rows)")
    return n_train, rule | {
        "cutoff_timestamp": int(timestamps[n_train]) if cutoff is None else cutoff_seconds,
        "last_train_timestamp": int(timestamps[n_train - 1]),
    }


def temporal_user_split(
    ratings: pl.DataFrame, test_fraction: float | None = None, test_count: int | None = None, min_ratings: int = 5
) -> Split:
    """P4: each user's last ceil(fraction * m) of m ratings (or last `test_count`) are test.

    Users with fewer than `min_ratings` ratings, or with no more than `test_count`, stay wholly in
    train. Without either option the fraction is 0.2. Within a user, rows are ordered by
    (timestamp, item_id).
    """
    if test_fraction is not None and test_count is not None:
        raise ValueError("give test_fraction or test_count, not both")
    if test_count is not None:
        if test_count < 1:
            raise ValueError(f"test_count must be at least 1, got {test_count}")
        n_test = pl.lit(test_count)
        rule: dict[str, Any] = {"test_count": test_count}
    else:
        test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        n_test = (pl.col(_USER_LENGTH) * test_fraction).ceil()
        rule = {"test_fraction": test_fraction}
    ranked = _rank_within_users(ratings)
    eligible = (pl.col(_USER_LENGTH) >= min_ratings) & (pl.col(_USER_LENGTH) > n_test)
    train, test = _partition(ranked, eligible & (pl.col(_POSITION) >= pl.col(_USER_LENGTH) - n_test))
    return Split(protocol="temporal-user", train=train, test=test, details=rule | {"min_ratings": min_ratings})


def leave_one_out_split(ratings: pl.DataFrame, min_interactions: int = 3) -> tuple[Split, pl.DataFrame]:
    """P3: for users with >= min_interactions, the last interaction is test, the one before validation.

    Returns the split (train without the validation rows) and the validation rows; users with
    fewer interactions stay wholly in train.
    """
    if min_interactions < 3:
        raise ValueError(f"leave-one-out needs at least 3 interactions per user, got {min_interactions}")
    ranked = _rank_within_users(ratings)
    eligible = pl.col(_USER_LENGTH) >= min_interactions
    train, test = _partition(ranked, eligible & (pl.col(_POSITION) == pl.col(_USER_LENGTH) - 1))
    split = Split(protocol="leave-one-out", train=train, test=test, details={"min_interactions": min_interactions})
    with_valid = with_validation(split)
    assert with_valid.valid is not None  # with_validation always cuts one
    return replace(with_valid, valid=None), with_valid.valid


def held_out_user_ids(user_lengths: pl.DataFrame, seed: int) -> np.ndarray:
    """P5's held-out users, sorted: a seeded `HELD_OUT_SHARE` of the users with at least 5
    interactions, and at least `MIN_HELD_OUT_USERS` of them (all eligible users when fewer).

    `user_lengths` has one row per user: `user_id` and `len` (their interactions); the draw
    depends only on the seed and the set of eligible users, not on row order.
    """
    eligible = np.sort(user_lengths.filter(pl.col("len") >= _MIN_HELD_OUT_LENGTH)[USER_ID].to_numpy())
    if eligible.size == 0:
        raise ValueError(f"held-out-users needs users with at least {_MIN_HELD_OUT_LENGTH} interactions; none has")
    n_held_out = min(eligible.size, max(math.ceil(HELD_OUT_SHARE * eligible.size), MIN_HELD_OUT_USERS))
    return np.sort(np.random.default_rng(seed).choice(eligible, size=n_held_out, replace=False))


def held_out_users_split(ratings: pl.DataFrame, seed: int = 0, held_out: np.ndarray | None = None) -> Split:
    """P5: the held-out users (`held_out`, default `held_out_user_ids` of `ratings`) leave train
    wholly; each one's first floor(0.8 m) interactions by (timestamp, item_id) are their
    `test_history`, the rest test. Every other user's rows are train."""
    if held_out is None:
        held_out = held_out_user_ids(ratings.group_by(USER_ID).len(), seed)
    ranked = _rank_within_users(ratings)
    is_held_out = pl.col(USER_ID).is_in(pl.Series(held_out, dtype=ratings.schema[USER_ID]).implode())
    in_history = pl.col(_POSITION) < (pl.col(_USER_LENGTH) * HISTORY_SHARE).floor()
    rest, test = _partition(ranked, is_held_out & ~in_history)
    train, test_history = _partition(_rank_within_users(rest), is_held_out)
    details = {
        "seed": seed,
        "held_out_users": int(test_history[USER_ID].n_unique()),
        "held_out_share": HELD_OUT_SHARE,
        "history_share": HISTORY_SHARE,
    }
    return Split(protocol=HELD_OUT_USERS, train=train, test=test, details=details, test_history=test_history)


def rolling_splits(
    ratings: pl.DataFrame, n_windows: int, window_days: float, end: datetime | int | None = None
) -> list[Split]:
    """Backtest: `n_windows` successive windows of `window_days` ending at `end` (default: just after
    the last rating). Window i trains on every row before its cut-off and tests on [cut-off,
    cut-off + window); rows after the window belong to neither part of that split.

    A window may hold no test rows (a gap in the data); the caller decides what to do with it.
    """
    ordered = ratings.sort(GLOBAL_ORDER)
    splits = []
    for train_rows, test_end, details in rolling_windows(ordered[TIMESTAMP].to_numpy(), n_windows, window_days, end):
        train, test = ordered.head(train_rows), ordered.slice(train_rows, test_end - train_rows)
        splits.append(Split(protocol=ROLLING, train=train, test=test, details=details))
    return splits


def rolling_windows(
    timestamps: np.ndarray, n_windows: int, window_days: float, end: datetime | int | None = None
) -> list[tuple[int, int, dict[str, Any]]]:
    """Each backtest window as (rows of train, end of its test rows) in the global order of the sorted
    `timestamps`, with its details (see `rolling_splits` for the rule)."""
    if n_windows < 1 or window_days <= 0:
        raise ValueError(f"need n_windows >= 1 and window_days > 0, got {n_windows} and {window_days}")
    if len(timestamps) == 0:
        raise ValueError("cannot backtest on no ratings")
    window = round(window_days * SECONDS_PER_DAY)
    last = int(timestamps[-1]) + 1 if end is None else unix_seconds(end)
    windows = []
    for index in range(n_windows):
        start = last - (n_windows - index) * window
        train_rows, test_end = (int(row) for row in np.searchsorted(timestamps, [start, start + window], side="left"))
        if train_rows == 0:
            raise ValueError(
                f"window {index} starts at {iso_utc(start)}, before any rating: use fewer or shorter windows"
            )
        details = {
            "window": index,
            "window_days": window_days,
            "cutoff_timestamp": start,
            "window_end_timestamp": start + window,
            "cutoff": iso_utc(start),
            "window_end": iso_utc(start + window),
        }
        windows.append((train_rows, test_end, details))
    return windows


def with_validation(split: Split, valid_fraction: float = 0.1) -> Split:
    """Cut the validation tail from `split.train` by the split's own rule, never touching test.

    Global and rolling splits: the last `valid_fraction` of train in global order. Per-user
    splits: each user's last `valid_fraction` of their train rows (or last N when the test part
    was cut by count), with the same minimum; P5 (whose train holds no held-out user) cuts its
    train users the same way, with P4's minimum. Leave-one-out: each evaluated user's last train row.
    """
    if split.valid is not None:
        raise ValueError("this split already has a validation tail")
    details = split.details
    if split.protocol in ("temporal-global", ROLLING):
        inner = temporal_global_split(split.train, train_fraction=1.0 - valid_fraction)
    elif split.protocol == "temporal-user":
        count = details.get("test_count")
        inner = temporal_user_split(
            split.train,
            test_fraction=None if count else valid_fraction,
            test_count=count,
            min_ratings=details["min_ratings"],
        )
    elif split.protocol == HELD_OUT_USERS:
        inner = temporal_user_split(split.train, test_fraction=valid_fraction, min_ratings=_MIN_HELD_OUT_LENGTH)
    elif split.protocol == "leave-one-out":
        ranked = _rank_within_users(split.train)
        tested = pl.col(USER_ID).is_in(split.test[USER_ID].unique().implode())
        train, valid = _partition(ranked, tested & (pl.col(_POSITION) == pl.col(_USER_LENGTH) - 1))
        inner = Split(protocol=split.protocol, train=train, test=valid, details={})
    else:
        raise ValueError(f"no validation rule for protocol {split.protocol!r}")
    rule = {} if split.protocol == "leave-one-out" else {"valid_fraction": valid_fraction}
    if split.protocol == "temporal-user" and details.get("test_count"):
        rule = {"valid_count": details["test_count"]}
    return replace(split, train=inner.train, valid=inner.test, details=details | rule)


def protocol_split(ratings: pl.DataFrame, settings: SplitSettings, held_out: np.ndarray | None = None) -> Split:
    """Train, validation tail and test (and P5's test_history) of a protocol, as the split stage
    writes them. `held_out`: P5's held-out users when drawn beforehand over more rows than `ratings`."""
    if settings.protocol == HELD_OUT_USERS:
        split = held_out_users_split(ratings, settings.seed or 0, held_out)
    elif settings.protocol == "temporal-global":
        split = temporal_global_split(ratings, settings.train_fraction, settings.cutoff)
    elif settings.protocol == "temporal-user":
        split = temporal_user_split(ratings, settings.test_fraction, settings.test_count, settings.min_ratings)
    else:
        split, valid = leave_one_out_split(ratings, settings.min_interactions)
        return replace(split, valid=valid)
    return with_validation(split, settings.valid_fraction)


def part_names(protocol: str) -> tuple[str, ...]:
    """The parts a split folder of `protocol` holds: train, valid, test, and P5's test_history."""
    return PART_NAMES + ((TEST_HISTORY,) if protocol == HELD_OUT_USERS else ())


def judged_against(parts: Mapping[str, Frame]) -> pl.LazyFrame:
    """What test rows are judged against: train + valid, and under P5 the held-out users'
    histories too (those users have no training row; their history is what they are scored from)."""
    known = [parts[name].lazy() for name in ("train", "valid", TEST_HISTORY) if name in parts]
    return pl.concat(known)


def cold_start_counts(train: Frame, test: Frame) -> dict[str, int]:
    """Test rows, users and items absent from train: counted so they are never silently dropped.

    Pass everything the model learns from as `train` (train + valid). See `COLD_RULE`. Lazy frames
    are read on the streaming engine; only the distinct users and items of train are held.
    """
    train_users = _collect(train.lazy().select(pl.col(USER_ID).unique()))[USER_ID].implode()
    train_items = _collect(train.lazy().select(pl.col(ITEM_ID).unique()))[ITEM_ID].implode()
    flagged = test.lazy().select(
        USER_ID,
        ITEM_ID,
        (~pl.col(USER_ID).is_in(train_users)).alias("_cold_user"),
        (~pl.col(ITEM_ID).is_in(train_items)).alias("_cold_item"),
    )
    counts = _collect(
        flagged.select(
            pl.len().alias("test_rows"),
            pl.col(USER_ID).n_unique().alias("test_users"),
            (pl.col("_cold_user") | pl.col("_cold_item")).sum().alias("cold_rows"),
            pl.col("_cold_user").sum().alias("cold_user_rows"),
            pl.col("_cold_item").sum().alias("cold_item_rows"),
            pl.col(USER_ID).filter(pl.col("_cold_user")).n_unique().alias("cold_users"),
            pl.col(ITEM_ID).filter(pl.col("_cold_item")).n_unique().alias("cold_items"),
        )
    )
    return {name: int(value) for name, value in counts.row(0, named=True).items()}


def leakage_check(history: Frame, test: Frame, scope: LeakageScope) -> dict[str, Any]:
    """Test rows earlier than the training data they are judged against.

    `global`: earlier than the latest row of `history`; `user`: earlier than the latest row of
    that user's own history. Ties in time are not leakage. Lazy frames are read on the streaming engine.
    """
    test_rows = int(_collect(test.lazy().select(pl.len())).item())
    if scope == "global":
        latest = _collect(history.lazy().select(pl.col(TIMESTAMP).max())).item()
        earlier = 0 if latest is None else int(_collect(test.lazy().select((pl.col(TIMESTAMP) < latest).sum())).item())
    elif scope == "user":
        latest_per_user = history.lazy().group_by(USER_ID).agg(pl.col(TIMESTAMP).max().alias("_latest"))
        joined = test.lazy().join(latest_per_user, on=USER_ID, how="inner")
        earlier = int(_collect(joined.select((pl.col(TIMESTAMP) < pl.col("_latest")).sum())).item())
    else:
        raise ValueError(f"scope must be 'global' or 'user', got {scope!r}")
    return {"scope": scope, "test_rows": test_rows, "earlier_test_rows": earlier, "passed": earlier == 0}


def split_report(
    parts: Mapping[str, Frame], protocol: str, contract: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a split's manifest states: sizes, cut-offs, cold counts and rule, leakage checks.

    `parts` maps train, valid and test (and P5's test_history) to frames (lazy scans of written
    parts are read on the streaming engine); test rows are judged against `judged_against(parts)`. `leakage.required` names the check the protocol must pass (`leakage.passed`:
    it and the validation tail's check passed); the other is informational (a per-user split has
    test rows earlier than other users' training rows by design). `contract`, the split contract's
    report (`data_contracts.splits.check_split`), supplies the two checks it already ran.
    """
    train, valid, test = (parts[name].lazy() for name in PART_NAMES)
    history, reference = pl.concat([train, valid]), judged_against(parts)
    required = LEAKAGE_SCOPE[protocol]
    known = {required: contract["test_leakage"], "valid_vs_train": contract["valid_leakage"]} if contract else {}
    checks = {
        "global": known.get("global") or leakage_check(reference, test, "global"),
        "user": known.get("user") or leakage_check(reference, test, "user"),
        "valid_vs_train": known.get("valid_vs_train") or leakage_check(train, valid, required),
    }
    facts = _collect(
        history.select(
            pl.col(USER_ID).n_unique().alias("train_users"),
            pl.col(ITEM_ID).n_unique().alias("train_items"),
            pl.col(TIMESTAMP).min().alias("first"),
            pl.col(TIMESTAMP).max().alias("last"),
        )
    ).row(0, named=True)
    held_out = {}
    if TEST_HISTORY in parts:
        held_out = {
            "held_out": _collect(
                parts[TEST_HISTORY]
                .lazy()
                .select(pl.col(USER_ID).n_unique().alias("users"), pl.len().alias("history_rows"))
            ).row(0, named=True)
        }
    return held_out | {
        "train_rows": int(_collect(train.select(pl.len())).item()),
        "valid_rows": checks["valid_vs_train"]["test_rows"],
        "test_rows": checks["global"]["test_rows"],
        "train_users": facts["train_users"],
        "train_items": facts["train_items"],
        "first_timestamp": _iso_or_none(facts["first"]),
        "last_train_timestamp": _iso_or_none(facts["last"]),
        "test": cold_start_counts(reference, test),
        "cold_rule": COLD_RULE,
        "leakage": {
            "required": required,
            "passed": checks[required]["passed"] and checks["valid_vs_train"]["passed"],
        }
        | checks,
    }


def unix_seconds(moment: datetime | int) -> int:
    """Unix seconds of a datetime (naive means UTC) or an int already in seconds."""
    if isinstance(moment, datetime):
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    return int(moment)


def iso_utc(seconds: int) -> str:
    """ISO 8601 UTC text of Unix seconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _collect(query: pl.LazyFrame) -> pl.DataFrame:
    return query.collect(engine="streaming")


def _iso_or_none(seconds: int | None) -> str | None:
    return None if seconds is None else iso_utc(int(seconds))


def _rank_within_users(ratings: pl.DataFrame) -> pl.DataFrame:
    """Rows ordered by (user, timestamp, item) with each row's position in its user and the user's length."""
    return ratings.sort(USER_ORDER).with_columns(
        pl.int_range(pl.len()).over(USER_ID).alias(_POSITION), pl.len().over(USER_ID).alias(_USER_LENGTH)
    )


def _partition(ranked: pl.DataFrame, is_second: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ranked rows by a predicate, dropping the helper columns; each part in global order."""
    flagged = ranked.with_columns(is_second.alias(_SECOND))
    helpers = (_POSITION, _USER_LENGTH, _SECOND)
    first = flagged.filter(~pl.col(_SECOND)).drop(*helpers).sort(GLOBAL_ORDER)
    second = flagged.filter(pl.col(_SECOND)).drop(*helpers).sort(GLOBAL_ORDER)
    return first, second
