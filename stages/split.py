"""Splitting: a protocol's train, validation tail and test parts, or a backtest's rolling windows.

Every split folder holds `train.parquet`, `valid.parquet` (cut from train by the protocol's own
rule, never from test; disjoint from train), `test.parquet` and a manifest with sizes, cut-offs,
cold counts with the rule that handles them, and leakage checks. The split contract
(`data_contracts.splits`) must hold: a leak or a (user, item) pair in both train and test is a bug
in the splitter, and fails the stage.
"""

import logging
from pathlib import Path

import polars as pl

from data_contracts.splits import check_split
from recsys_models.splitting import (
    ROLLING,
    Split,
    SplitSettings,
    protocol_split,
    rolling_splits,
    split_report,
    with_validation,
)
from stages.manifest import StageRecord, stage

logger = logging.getLogger(__name__)


def split(validated_dir: Path, out_dir: Path, settings: SplitSettings | None = None) -> Path:
    """Write the train, valid and test parts of `settings.protocol` (default: P1/P2, 80% train)."""
    settings = settings or SplitSettings()
    with stage("split", out_dir, settings.model_dump(mode="json")) as record:
        record.record_inputs([validated_dir / "ratings.parquet"])
        parts = protocol_split(pl.read_parquet(validated_dir / "ratings.parquet"), settings)
        _write_parts(record, parts)
    return out_dir


def rolling_split(
    validated_dir: Path, out_dir: Path, n_windows: int, window_days: float, valid_fraction: float = 0.1
) -> list[Path]:
    """Write one split folder per backtest window (`window_00`, ...), each with its own manifest.

    Window i trains on everything before its cut-off (with the last `valid_fraction` of that as
    the validation tail) and tests on the `window_days` after it. The top manifest lists windows.
    """
    parameters = {"protocol": ROLLING, "n_windows": n_windows, "window_days": window_days,
                  "valid_fraction": valid_fraction}  # fmt: skip
    window_dirs = []
    with stage("split", out_dir, parameters) as record:
        record.record_inputs([validated_dir / "ratings.parquet"])
        windows = rolling_splits(pl.read_parquet(validated_dir / "ratings.parquet"), n_windows, window_days)
        listed = []
        for window in windows:
            window_dir = out_dir / f"window_{window.details['window']:02d}"
            with stage("split", window_dir, parameters | {"window": window.details["window"]}) as window_record:
                window_record.inputs = record.inputs
                _write_parts(window_record, with_validation(window, valid_fraction))
            if window.test.height == 0:
                logger.warning("backtest window %s holds no test rows", window.details["cutoff"])
            window_dirs.append(window_dir)
            listed.append({"folder": window_dir.name, **window.details, "test_rows": window.test.height})
        record.counts = {"windows": listed}
    return window_dirs


def _write_parts(record: StageRecord, parts: Split) -> None:
    """Write the three parts and the manifest facts; refuse a split that leaks."""
    if parts.valid is None:
        raise ValueError("a split stage writes a validation tail: cut it with with_validation first")
    contract = check_split({"train": parts.train, "valid": parts.valid, "test": parts.test}, parts.protocol)
    report = split_report(parts) | {"contract": contract}
    record.write_table("train", parts.train)
    record.write_table("valid", parts.valid)
    record.write_table("test", parts.test)
    record.parameters |= {"protocol": parts.protocol} | parts.details
    record.counts = report
