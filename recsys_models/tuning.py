"""Search spaces: what a hyperparameter search may change in a family's config, declared beside it.

A family's config class sets `search_space: ClassVar[SearchSpace]`, a mapping of field name to
`IntRange`, `FloatRange` or `Choice`; `suggest` turns it into an Optuna trial's `suggest_*` calls
(any object with those methods: the library does not import Optuna). Fields outside the space
keep the base configuration's values.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from recsys_models.exceptions import RecsysError


class IntRange(NamedTuple):
    """Integers from `low` to `high` (inclusive), sampled on a log scale when `log`."""

    low: int
    high: int
    log: bool = False


class FloatRange(NamedTuple):
    """Reals from `low` to `high`, sampled on a log scale when `log`."""

    low: float
    high: float
    log: bool = False


class Choice(NamedTuple):
    """One of a few values (strings, numbers or booleans)."""

    options: tuple[Any, ...]


Dimension = IntRange | FloatRange | Choice
SearchSpace = Mapping[str, Dimension]


class Suggester(Protocol):
    """What `suggest` needs of a trial (optuna.trial.Trial has it)."""

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class NoSearchSpace(RecsysError, ValueError):
    """The family declares no search space: there is nothing to tune."""


def search_space(family: str, config_type: type[BaseModel]) -> SearchSpace:
    """The space `config_type` declares, checked against its fields and its defaults."""
    space: SearchSpace | None = getattr(config_type, "search_space", None)
    if not space:
        raise NoSearchSpace(
            f"{family} declares no search space (search_space on {config_type.__name__}): nothing to tune"
        )
    unknown = sorted(set(space) - set(config_type.model_fields))
    if unknown:
        raise ValueError(f"{config_type.__name__}.search_space names unknown fields: {', '.join(unknown)}")
    return space


def suggest(trial: Suggester, space: SearchSpace) -> dict[str, Any]:
    """One value per dimension of `space`, drawn by `trial`."""
    values: dict[str, Any] = {}
    for name, dimension in space.items():
        if isinstance(dimension, IntRange):
            values[name] = trial.suggest_int(name, dimension.low, dimension.high, log=dimension.log)
        elif isinstance(dimension, FloatRange):
            values[name] = trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
        else:
            values[name] = trial.suggest_categorical(name, list(dimension.options))
    return values


def starting_point(config: BaseModel, space: SearchSpace) -> dict[str, Any]:
    """The values of `config` (the base configuration) in the space's dimensions: the search's first trial."""
    return {name: getattr(config, name) for name in space}


def describe_space(space: SearchSpace) -> dict[str, str]:
    """Each dimension as a short text, e.g. {"l2": "float [10, 1e+05] log"}: for logs and MLflow."""
    texts = {}
    for name, dimension in space.items():
        if isinstance(dimension, Choice):
            texts[name] = "choice " + "|".join(map(str, dimension.options))
        else:
            kind = "int" if isinstance(dimension, IntRange) else "float"
            texts[name] = f"{kind} [{dimension.low:g}, {dimension.high:g}]" + (" log" if dimension.log else "")
    return texts
