"""Splitting: a protocol's train, validation tail and test parts, or a backtest's rolling windows.

Every split folder holds `train.parquet`, `valid.parquet` (cut from train by the protocol's own
rule, never from test; disjoint from train), `test.parquet` (P5 adds `test_history.parquet`, the
held-out users' histories they are scored from) and a manifest with sizes, cut-offs,
cold counts with the rule that handles them, and leakage checks. The split contract
(`data_contracts.splits`) must hold: a leak or a (user, item) pair in both train and test is a bug
in the splitter, and fails the stage.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.engine import ContractViolation
from data_contracts.splits import check_split
from recsys_models.columns import RATING, USER_ID
from recsys_models.datasets.sources import SourceIdentity
from recsys_models.datasets.spec import Feedback, ProtocolName
from recsys_models.split_writer import BATCH_ROWS, PartWriter, write_protocol_split, write_rolling_windows
from recsys_models.splitting import (
    HELD_OUT_USERS,
    ROLLING,
    SplitSettings,
    judged_against,
    part_names,
    split_report,
)
from stages.manifest import StageRecord, read_manifest, stage
from stages.validate import INTERACTIONS

logger = logging.getLogger(__name__)


def split_settings(
    source: SourceIdentity, protocol: ProtocolName | None, *, train_fraction: float, seed: int
) -> SplitSettings:
    """A run's split settings: its protocol (else the source's) with the protocol's defaults
    (PROTOCOLS.md), `train_fraction` for P1/P2, the run's seed for P5's draw of held-out users, and
    the source's feedback semantics (its dataset spec), which the later stages read from the split."""
    protocol = protocol or source.protocol
    if protocol == "temporal-global":
        return SplitSettings(protocol=protocol, train_fraction=train_fraction, feedback=source.feedback)
    if protocol == HELD_OUT_USERS:
        return SplitSettings(protocol=protocol, seed=seed, feedback=source.feedback)
    return SplitSettings(protocol=protocol, feedback=source.feedback)


def split(
    validated_dir: Path, out_dir: Path, settings: SplitSettings | None = None, batch_rows: int = BATCH_ROWS
) -> Path:
    """Write the train, valid and test parts of `settings.protocol` (default: P1/P2, 80% train).

    The validated ratings are read as a scan, `batch_rows` rows at a time (`recsys_models.split_writer`).
    """
    settings = settings or SplitSettings()
    source = _interactions(validated_dir)
    with stage("split", out_dir, settings.model_dump(mode="json")) as record:
        record.record_inputs([source])
        details = write_protocol_split(pl.scan_parquet(source), settings, record.table_writer, out_dir, batch_rows)
        _check_and_report(record, settings.protocol, details, settings.feedback)
    return out_dir


def rolling_split(
    validated_dir: Path,
    out_dir: Path,
    n_windows: int,
    window_days: float,
    valid_fraction: float = 0.1,
    batch_rows: int = BATCH_ROWS,
    feedback: Feedback | None = None,
) -> list[Path]:
    """Write one split folder per backtest window (`window_00`, ...), each with its own manifest.

    Window i trains on everything before its cut-off (with the last `valid_fraction` of that as
    the validation tail) and tests on the `window_days` after it. The top manifest lists windows.
    `feedback` (the source's, default MovieLens-like) is recorded for the evaluation of each window.
    """
    feedback = feedback or Feedback()
    parameters = {
        "protocol": ROLLING,
        "n_windows": n_windows,
        "window_days": window_days,
        "valid_fraction": valid_fraction,
        "feedback": feedback.model_dump(mode="json"),
    }
    source = _interactions(validated_dir)
    with stage("split", out_dir, parameters) as record:
        record.record_inputs([source])

        @contextmanager
        def window_stage(details: dict[str, Any]) -> Iterator[PartWriter]:
            window_dir = out_dir / f"window_{details['window']:02d}"
            with stage("split", window_dir, parameters | {"window": details["window"]}) as window_record:
                window_record.inputs = record.inputs
                yield window_record.table_writer
                _check_and_report(window_record, ROLLING, details, feedback, evaluable=False)

        windows = write_rolling_windows(
            pl.scan_parquet(source), n_windows, window_days, valid_fraction, window_stage, batch_rows
        )
        for window in windows:
            if window["test_rows"] == 0:
                logger.warning("backtest window %s holds no test rows", window["cutoff"])
        record.counts = {"windows": [{"folder": f"window_{w['window']:02d}"} | w for w in windows]}
    return [out_dir / f"window_{window['window']:02d}" for window in windows]


def _interactions(validated_dir: Path) -> Path:
    """The table a split reads: the validated ratings with repeats combined (`interactions`), or,
    in a folder that holds only valid ratings (made by hand, or by an earlier version), those."""
    combined = validated_dir / f"{INTERACTIONS}.parquet"
    return combined if combined.exists() else validated_dir / "ratings.parquet"


def _check_and_report(
    record: StageRecord, protocol: str, details: dict[str, Any], feedback: Feedback, evaluable: bool = True
) -> None:
    """Check the written parts against the split contract and record the manifest facts; a split
    that leaks is a bug in the splitter: its parts are removed and the stage fails."""
    paths = {name: record.directory / f"{name}.parquet" for name in part_names(protocol)}
    parts = {name: pl.scan_parquet(path) for name, path in paths.items()}
    try:
        contract = check_split(parts, protocol, repeats_allowed=not feedback.exclude_seen)
        if evaluable:  # a backtest window may legitimately be empty: it is reported, not failed
            check_evaluable(parts, protocol, feedback)
    except ContractViolation:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
    record.parameters |= {"protocol": protocol} | details
    record.counts = split_report(parts, protocol, contract) | {"contract": contract}


def check_evaluable(parts: dict[str, pl.LazyFrame], protocol: str, feedback: Feedback) -> None:
    """Fail, naming the cause, when no test user could be evaluated: none has a relevant test
    interaction, or none of those has a training interaction (P5: a history)."""
    threshold = None if protocol == "leave-one-out" else feedback.relevance_threshold
    test = parts["test"]
    relevant = test if threshold is None else test.filter(pl.col(RATING) >= threshold)
    users = relevant.select(USER_ID).unique()
    if users.select(pl.len()).collect().item() == 0:
        n_test = test.select(pl.len()).collect().item()
        raise ContractViolation(
            [
                f"no user can be evaluated: none of the {n_test} test interactions is relevant under "
                f"{feedback.relevance_rule} (set `relevant` in the dataset spec)"
            ]
        )
    history = judged_against(parts).select(USER_ID)
    if users.join(history.unique(), on=USER_ID, how="semi").select(pl.len()).collect().item() == 0:
        raise ContractViolation(
            ["no user can be evaluated: no user with a relevant test interaction has any training interaction"]
        )


SERVE = "serve"  # the manifest parameter that marks a serve split


def serve_split(split_dir: Path, out_dir: Path) -> Path:
    """The data a served model is refit on: every row of the run. Its training part is the split's
    train and test parts (and P5's held-out histories) together, its validation tail the split's own (for the families that stop
    early on it), and its test part empty: what serves is evaluated as the recipe that was trained
    on `split_dir`'s train part and judged on its test part, never on itself."""
    manifest = read_manifest(split_dir)
    with stage("serve-split", out_dir, manifest["parameters"] | {SERVE: True}) as record:
        paths = {name: split_dir / f"{name}.parquet" for name in part_names(manifest["parameters"]["protocol"])}
        record.record_inputs(list(paths.values()))
        served = [pl.scan_parquet(path) for name, path in paths.items() if name != "valid"]
        record.write_table("train", pl.concat(served).collect(engine="streaming"))
        record.write_table("valid", pl.read_parquet(paths["valid"]))
        record.write_table("test", pl.read_parquet(paths["test"]).clear())
        record.counts = {
            "train_rows": record.outputs["train.parquet"]["rows"],
            "valid_rows": record.outputs["valid.parquet"]["rows"],
            "test_rows": 0,
        }
    return out_dir
