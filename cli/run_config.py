"""One run configuration: a YAML file holding a flow's parameters, checked as a whole before any stage runs.

`recsys retrain|backtest|score|tune|refresh --config run.yaml` reads it; `recsys config show` prints the
effective configuration (README, "Configure a run"). The file's top-level keys are the fields of the
command's parameter model in `flows/config.py` (`RetrainConfig`, `BacktestConfig`, `ScoreConfig`,
`TuneConfig`, `RefreshConfig`), plus `execution:` (`Execution` in `flows/runners.py`: runner, workers, dask_address,
refresh_cache) for the commands whose flow takes one; the Prefect deployments in `prefect.yaml` pass
the same keys, split into the flow's two parameters `config:` and `execution:`. For retrain::

    dataset: ml-100k                 # a built-in name, a dataset spec (.yaml) or a ratings file
    families: [popularity, ease]     # null (or left out): every default family
    family_configs: {ease: {l2: 500}}
    seed: 42
    gate: {metric: ndcg_at_10, min_users: 10}
    drift: {policy: fail}
    execution: {runner: local, workers: 2}

Any key may be left out: its model's default holds, stated once, in the model. The effective
configuration is, from weakest to strongest: the models' defaults, the file, a family-configs file
(`--family-configs`, what `recsys tune` writes: merged key by key into `family_configs`, or for tune
into `base_config` from its entry for the tuned family), then each command-line flag that was given.
Paths are read from the folder the command runs in, as on the command line and in the deployments.

Beyond the models' own rules, each `family_configs` entry (and tune's `base_config`) is checked by its
family's config (`recsys_models.registry.make_config`). Whatever is wrong is one `RunConfigError`
whose message is one line naming each bad key and where it came from, e.g.
`run.yaml: family_configs.ease.l2_reg: unknown key (did you mean 'l2'?)`.
"""

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from flows.config import BacktestConfig, RefreshConfig, RetrainConfig, ScoreConfig, TuneConfig, describe_unknown
from flows.runners import Execution
from recsys_models.exceptions import RecsysError
from recsys_models.registry import FAMILIES, make_config

CONFIG_TYPES: dict[str, type[BaseModel]] = {
    "retrain": RetrainConfig,
    "backtest": BacktestConfig,
    "score": ScoreConfig,
    "tune": TuneConfig,
    "refresh": RefreshConfig,
}
EXECUTION = "execution"
WITHOUT_EXECUTION = {"score", "refresh"}  # batch scoring and refresh run no task runner
FAMILY_CONFIGS = "family_configs"  # retrain and backtest: family -> config
BASE_CONFIG = "base_config"  # tune: the tuned family's config
COMMAND_LINE = "command line"
MAX_INPUT_CHARS = 60


class RunConfigError(RecsysError):
    """A run configuration that does not validate; the message is one line naming each bad key."""


@dataclass(frozen=True)
class RunConfig:
    """The effective configuration of one command: its flow's parameters, validated."""

    config: BaseModel
    execution: Execution | None

    def as_file(self) -> dict[str, Any]:
        """The configuration as a run file's content, every default filled in."""
        content = self.config.model_dump(mode="json")
        if self.execution is not None:
            content[EXECUTION] = self.execution.model_dump(mode="json")
        return content

    def to_yaml(self) -> str:
        """`as_file` as YAML, keys in the models' order: what `recsys config show` prints."""
        return yaml.safe_dump(self.as_file(), sort_keys=False)


@cache
def file_model(command: str) -> type[BaseModel]:
    """The model of a whole run file: the command's config model, plus `execution` when its flow takes one."""
    config_type = CONFIG_TYPES[command]
    if command in WITHOUT_EXECUTION:
        return config_type
    execution = (Execution, Field(default_factory=Execution, description="How the flow runs (flows/runners.py)."))
    return create_model(f"{config_type.__name__}File", __base__=config_type, execution=execution)


def default_of(command: str, key: tuple[str, ...]) -> Any:
    """The default the models state for `key` (a path in the run file), e.g. `("execution", "workers")`;
    None for a required key."""
    holder = _model_at(file_model(command), key[:-1])
    if holder is None:
        raise KeyError(f"no model holds {'.'.join(key)}")
    field = holder.model_fields[key[-1]]
    return None if field.is_required() else field.get_default(call_default_factory=True)


def read_run_file(path: Path) -> dict[str, Any]:
    """The mapping a run file holds; one line naming the file when it is missing, not YAML or no mapping."""
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise RunConfigError(f"{path}: cannot read the run configuration: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise RunConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise RunConfigError(f"{path}: expected a mapping of keys to values, got {type(content).__name__}")
    return content


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s values; mappings present in both are merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        merged[key] = merge(merged[key], value) if both_mappings else value
    return merged


def resolve(
    command: str,
    path: Path | None = None,
    family_configs: Mapping[str, dict[str, Any]] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The effective configuration of `command`: the models' defaults, the run file at `path`, the
    `family_configs` of a family-configs file, then `flags` (a partial run file: the flags given).
    Raises `RunConfigError`, one line, when anything in it is wrong."""
    flags = flags or {}
    content = merge(read_run_file(path) if path else {}, flags)
    if family_configs and command == "tune":  # the tuned family's entry is its base config
        content = merge(content, {BASE_CONFIG: family_configs.get(str(content.get("family")), {})})
    elif family_configs:
        content = merge(content, {FAMILY_CONFIGS: family_configs})
    label = str(path) if path else "config"
    model = file_model(command)
    try:
        validated = model.model_validate(content)
    except ValidationError as error:
        origins = [COMMAND_LINE if _given(flags, detail["loc"]) else label for detail in error.errors()]
        raise RunConfigError(_one_line(zip(origins, describe_errors(error, model), strict=True))) from None
    problems = _family_config_problems(validated)
    if problems:
        raise RunConfigError(_one_line((label, line) for line in problems))
    config_type = CONFIG_TYPES[command]
    config = config_type(**{name: getattr(validated, name) for name in config_type.model_fields})
    return RunConfig(config, getattr(validated, EXECUTION, None))


def describe_errors(error: ValidationError, model: type[BaseModel] | None = None, prefix: tuple = ()) -> list[str]:
    """Each error of `error` as `dotted.key: what is wrong`; an unknown key of `model` (the model that
    was validated) says which known key is closest."""
    lines = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        key = ".".join(map(str, prefix + loc)) or "config"
        if detail["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key{_closest_key(model, loc)}")
            continue
        message = detail["msg"].removeprefix("Value error, ")
        value = detail.get("input")
        if detail["type"] != "missing" and (value is None or isinstance(value, str | int | float)):
            message += f" (got {_shorten(repr(value))})"
        lines.append(f"{key}: {message}")
    return lines


def _family_config_problems(validated: BaseModel) -> list[str]:
    """Each family config of a validated run file checked by its family's config model."""
    entries: dict[tuple[str, ...], tuple[str, dict[str, Any]]]
    if isinstance(validated, TuneConfig):
        entries = {(BASE_CONFIG,): (validated.family, validated.base_config)}
    else:
        configs = getattr(validated, FAMILY_CONFIGS, {})
        entries = {(FAMILY_CONFIGS, family): (family, config) for family, config in configs.items()}
    problems = []
    for prefix, (family, config) in entries.items():
        if family not in FAMILIES:
            problems.append(f"{'.'.join(prefix)}: {describe_unknown(family)}")
            continue
        try:
            make_config(family, config)
        except ValidationError as error:
            problems += describe_errors(error, FAMILIES[family].config_type, prefix)
    return problems


def _one_line(problems: Iterable[tuple[str, str]]) -> str:
    """`origin: key: problem; key: problem; other origin: ...`: the run file's problems, then the flags'."""
    parts, last = [], None
    for origin, line in sorted(problems, key=lambda problem: problem[0] == COMMAND_LINE):
        parts.append(line if origin == last else f"{origin}: {line}")
        last = origin
    return "; ".join(parts)


def _closest_key(model: type[BaseModel] | None, loc: tuple) -> str:
    """` (did you mean 'l2'?)` for an unknown key at `loc`, or the known keys when none is close."""
    parent = _model_at(model, loc[:-1]) if model is not None else None
    if parent is None:
        return ""
    known = list(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model that holds the keys at `loc` inside `model` (nested models, lists of them), or None."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):  # an item of a list: the list's model holds its keys
            continue
        field = model.model_fields.get(part)
        kinds = (field.annotation, *get_args(field.annotation)) if field else ()
        model = next((kind for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseModel)), None)
    return model


def _given(flags: Mapping[str, Any], loc: tuple) -> bool:
    """Whether the value at `loc` (or a mapping above it) came from a command-line flag."""
    value: Any = flags
    for part in loc:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_INPUT_CHARS else text[: MAX_INPUT_CHARS - 1] + "…"
