"""Data contracts: table-level checks that stop a run, row-level checks that quarantine rows.

Suites live as JSON files in `data_contracts/suites/`. Importing this package does not import
Great Expectations (about 3 s); `validate_ratings` does, on first use.
"""

from data_contracts.ratings import ContractViolation, ValidationOutcome, validate_ratings

__all__ = ["ContractViolation", "ValidationOutcome", "validate_ratings"]
