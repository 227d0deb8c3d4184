"""Contract of a split's outputs. Any break is a bug in splitting, so the policy is `fail`."""

import polars as pl

from data_contracts.engine import ContractViolation, TableContract, table_problems
from recsys_models import columns

GLOBAL_PROTOCOLS = frozenset({"temporal-global", "rolling"})
PART_NAMES = ("train", "valid", "test")


def check_split(
    parts: dict[str, pl.DataFrame], protocol: str, cutoff_timestamp: int | None = None
) -> dict[str, object]:
    """Raise `ContractViolation` when the split leaks or is malformed; return the checks' report.

    Checks: each part has the ratings schema (train and test not empty); no (user, item) pair in
    both the training part (train + valid) and test; for global protocols no test rating before
    the cut-off nor before the last training rating.
    """
    problems: list[str] = []
    for name in PART_NAMES:
        contract = TableContract(table=f"split {name}", suite_file="", schema=columns.RATINGS_SCHEMA)
        found = table_problems(contract, parts[name])
        problems += [p for p in found if name != "valid" or not p.endswith("table is empty")]
    if problems:
        raise ContractViolation(problems)
    history = pl.concat([parts["train"], parts["valid"]])
    shared_pairs = history.select(columns.USER_ID, columns.ITEM_ID).unique().join(
        parts["test"].select(columns.USER_ID, columns.ITEM_ID).unique(), on=[columns.USER_ID, columns.ITEM_ID]
    ).height
    if shared_pairs:
        problems.append(f"split: {shared_pairs} (user, item) pairs are in both the training part and test")
    report: dict[str, object] = {"protocol": protocol, "shared_pairs": shared_pairs}
    if protocol in GLOBAL_PROTOCOLS:
        first_test = int(parts["test"][columns.TIMESTAMP].min())
        last_train = int(history[columns.TIMESTAMP].max())
        report |= {"first_test_timestamp": first_test, "last_train_timestamp": last_train}
        if cutoff_timestamp is not None and first_test < cutoff_timestamp:
            problems.append(f"split: a test rating at {first_test} is before the cut-off {cutoff_timestamp}")
        if first_test < last_train:
            problems.append(f"split: test starts at {first_test}, before the last training rating at {last_train}")
    if problems:
        raise ContractViolation(problems)
    return report | {"success": True}
