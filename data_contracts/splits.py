"""Contract of a split's outputs. Any break is a bug in splitting, so the policy is `fail`."""

from collections.abc import Mapping
from typing import Any

import polars as pl

from data_contracts.engine import ContractViolation, TableContract, table_problems
from recsys_models import columns
from recsys_models.splitting import LEAKAGE_SCOPE, TEST_HISTORY, judged_against, leakage_check, part_names


def check_split(
    parts: Mapping[str, pl.DataFrame | pl.LazyFrame], protocol: str, repeats_allowed: bool = False
) -> dict[str, Any]:
    """Raise `ContractViolation` when the split is malformed or leaks; return the checks' report.

    Checks: each part has the ratings schema (train and test not empty, valid may be); no
    (user, item) pair in both the training part (train + valid) and test; no test rating earlier
    than the training data it is judged against (the protocol's scope: global for global and
    rolling splits, the user's own history for per-user splits), and no validation row earlier
    than train by the same rule. Lazy scans of written parts are read on the streaming engine; the
    pair check holds the distinct (user, item) pairs of test. With `repeats_allowed` (a source
    whose seen items may be recommended again, `exclude_seen: false`) a pair in both parts is a
    repeat to predict, not a leak: it is counted and reported as allowed. Under P5 (a
    `test_history` part), test is judged against that history as well, and no held-out user may
    have a training row.
    """
    problems: list[str] = []
    for name in part_names(protocol):
        contract = TableContract(table=f"split {name}", suite_file="", schema=columns.RATINGS_SCHEMA)
        found = table_problems(contract, parts[name])
        problems += [p for p in found if name != "valid" or not p.endswith("table is empty")]
    if problems:
        raise ContractViolation(problems)
    train, valid, test = (parts[name].lazy() for name in ("train", "valid", "test"))
    history, reference = pl.concat([train, valid]), judged_against(parts)
    pairs = [columns.USER_ID, columns.ITEM_ID]
    if TEST_HISTORY in parts:
        trained = history.select(columns.USER_ID).unique()
        overlap = parts[TEST_HISTORY].lazy().select(columns.USER_ID).unique().join(trained, on=columns.USER_ID)
        held_out_trained = int(overlap.select(pl.len()).collect(engine="streaming").item())
        if held_out_trained:
            problems.append(f"split: {held_out_trained} held-out users have rows in the training part")
    in_both = reference.select(pairs).join(test.select(pairs).unique(), on=pairs, how="semi").unique()
    shared_pairs = int(in_both.select(pl.len()).collect(engine="streaming").item())
    if shared_pairs and not repeats_allowed:
        problems.append(f"split: {shared_pairs} (user, item) pairs are in both the training part and test")
    scope = LEAKAGE_SCOPE[protocol]
    test_leak = leakage_check(reference, test, scope)
    valid_leak = leakage_check(train, valid, scope)
    for part, leak in (("test", test_leak), ("valid", valid_leak)):
        if not leak["passed"]:
            problems.append(
                f"split: {leak['earlier_test_rows']} {part} rows are earlier than the training data they are "
                f"judged against ({scope} scope)"
            )
    if problems:
        raise ContractViolation(problems)
    return {
        "protocol": protocol,
        "shared_pairs": shared_pairs,
        "shared_pairs_allowed": repeats_allowed,
        "test_leakage": test_leak,
        "valid_leakage": valid_leak,
    }
