"""Data contracts: table-level checks that stop a run, row-level checks that quarantine rows.

Suites live as JSON files in `data_contracts/suites/` (one per input table, each expectation with
its reason and policy). Importing this package does not import Great Expectations (about 3 s);
validation does, on first use.
"""

from data_contracts.catalogue import validate_items, validate_tags
from data_contracts.drift import DriftBounds, check_drift
from data_contracts.engine import ContractViolation, ValidationOutcome
from data_contracts.policy import DEFAULT_MAX_QUARANTINE_SHARE, enforce_quarantine_share
from data_contracts.ratings import validate_ratings
from data_contracts.splits import check_split

__all__ = [
    "DEFAULT_MAX_QUARANTINE_SHARE",
    "ContractViolation",
    "DriftBounds",
    "ValidationOutcome",
    "check_drift",
    "check_split",
    "enforce_quarantine_share",
    "validate_items",
    "validate_ratings",
    "validate_tags",
]
