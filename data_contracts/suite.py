"""Expectation suites kept as reviewable JSON files under `data_contracts/suites/`.

A suite file is a Great Expectations 1.x `ExpectationSuite` (`name`, `notes`, `meta`,
`expectations`), plus `meta.polars_expectations`: expectations written in the same shape but
evaluated in Polars, where GX has no built-in or is too slow. Every expectation carries
`meta.reason` (one line: why it exists) and `meta.policy` (what happens to rows that break
it; only "quarantine" is defined for row-level expectations).

Values written `{"$PARAMETER": "name"}` are GX suite parameters, filled at run time.
This module only reads and checks suite files; it does not import Great Expectations
(`build_gx_suite` imports it when called).
"""

import json
import warnings
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, Literal

GX_ENGINE: Final = "great_expectations"
POLARS_ENGINE: Final = "polars"
Engine = Literal["great_expectations", "polars"]

QUARANTINE = "quarantine"
_ROW_POLICIES = frozenset({QUARANTINE})
_PARAMETER_KEY = "$PARAMETER"


@dataclass(frozen=True)
class RowExpectation:
    """One row-level expectation of a suite, as written in its JSON file."""

    type: str
    kwargs: dict[str, Any] = field(hash=False)
    reason: str
    policy: str
    engine: Engine

    @property
    def column(self) -> str | None:
        """The column checked, the columns joined by commas, or None for a whole-row check."""
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        if "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        return None

    @property
    def name(self) -> str:
        """Unique name used in reports and in quarantined rows, e.g.
        `expect_column_values_to_not_be_null(user_id)` or `expect_rows_to_be_unique()`."""
        return f"{self.type}({self.column or ''})"

    @property
    def parameters(self) -> frozenset[str]:
        """Names of the run-time parameters (`{"$PARAMETER": name}`) this expectation needs."""
        return frozenset(
            value[_PARAMETER_KEY]
            for value in self.kwargs.values()
            if isinstance(value, dict) and _PARAMETER_KEY in value
        )

    def resolved_kwargs(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The kwargs with every `{"$PARAMETER": name}` replaced by `parameters[name]`."""
        return {
            key: parameters[value[_PARAMETER_KEY]] if isinstance(value, dict) and _PARAMETER_KEY in value else value
            for key, value in self.kwargs.items()
        }

    def to_gx_dict(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": dict(self.kwargs), "meta": {"reason": self.reason, "policy": self.policy}}


@dataclass(frozen=True)
class SuiteSpec:
    """A suite file after checking: its name, notes and row-level expectations in file order."""

    name: str
    notes: str
    expectations: tuple[RowExpectation, ...]

    def __post_init__(self) -> None:
        names = [expectation.name for expectation in self.expectations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"suite {self.name!r} has duplicate expectations: {', '.join(duplicates)}")


def _parse_expectation(raw: dict[str, Any], engine: Engine, suite_name: str) -> RowExpectation:
    where = f"suite {suite_name!r}, expectation {raw.get('type')!r}"
    unknown = set(raw) - {"type", "kwargs", "meta", "id"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    kwargs = raw.get("kwargs") or {}
    meta = raw.get("meta") or {}
    if not isinstance(raw.get("type"), str):
        raise ValueError(f"{where}: needs a 'type'")
    if engine == GX_ENGINE and "column" not in kwargs:
        raise ValueError(f"{where}: Great Expectations row-level checks need kwargs.column")
    target = kwargs.get("column", kwargs.get("column_list", "whole rows"))
    reason = meta.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{where} on {target!r}: meta.reason must say why the expectation exists")
    policy = meta.get("policy")
    if policy not in _ROW_POLICIES:
        raise ValueError(f"{where} on {target!r}: meta.policy must be one of {sorted(_ROW_POLICIES)}, got {policy!r}")
    return RowExpectation(type=raw["type"], kwargs=dict(kwargs), reason=reason.strip(), policy=policy, engine=engine)


def parse_suite(document: dict[str, Any]) -> SuiteSpec:
    """Check a suite document (the parsed JSON) and return its row-level expectations."""
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a suite needs a non-empty 'name'")
    meta = document.get("meta") or {}
    expectations = [_parse_expectation(raw, GX_ENGINE, name) for raw in document.get("expectations") or []]
    expectations += [_parse_expectation(raw, POLARS_ENGINE, name) for raw in meta.get("polars_expectations") or []]
    notes = document.get("notes") or ""
    return SuiteSpec(
        name=name, notes=notes if isinstance(notes, str) else "\n".join(notes), expectations=tuple(expectations)
    )


def load_suite(file_name: str) -> SuiteSpec:
    """Read and check `data_contracts/suites/<file_name>` (packaged with the library)."""
    text = resources.files("data_contracts").joinpath("suites", file_name).read_text(encoding="utf-8")
    return parse_suite(json.loads(text))


def import_great_expectations() -> Any:
    """Import Great Expectations (about 3 s) without its import-time DeprecationWarning
    (`sre_constants`), which breaks runs under `-W error`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations

    return great_expectations


def build_gx_suite(name: str, expectations: tuple[RowExpectation, ...]) -> Any:
    """A `great_expectations.ExpectationSuite` holding the GX-engine expectations given.

    GX logs and drops an expectation whose configuration it rejects; this raises instead.
    """
    gx = import_great_expectations()
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    accepted = []
    for expectation in expectations:
        if expectation.engine != GX_ENGINE:
            continue
        try:
            get_expectation_impl(expectation.type)
        except ExpectationNotFoundError as error:
            raise ValueError(
                f"suite {name!r}: Great Expectations has no expectation type {expectation.type!r}"
            ) from error
        try:
            built = gx.ExpectationSuite(name=name, expectations=[expectation.to_gx_dict()]).expectations
        except Exception as error:  # pydantic rejects bad kwargs with its own error types
            raise ValueError(f"suite {name!r}: Great Expectations rejected {expectation.name}: {error}") from error
        if not built:  # GX logs and drops what it cannot build instead of raising
            raise ValueError(f"suite {name!r}: Great Expectations rejected {expectation.name}")
        accepted.append(built[0])
    # Built in one go: `add_expectation` would look for a context's store to save into.
    return gx.ExpectationSuite(name=name, expectations=accepted)
