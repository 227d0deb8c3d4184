"""Dataset specs: one YAML file describes a source once (see README, "Bring your own data").

A spec names the source (`name` is its identity: MLflow tags, drift reference, promotion), where
its interactions are, which column plays which role, how times are written, explicit or implicit
feedback, how repeated (user, item) rows combine and what counts as relevant. `load_spec` reads
and checks a file: an unknown key, an unknown role or a bad value is one `SpecError` line naming
the key. `Feedback` is the part of a spec every later stage needs (split, train, evaluate).
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from recsys_models.datasets.types import RatingScale
from recsys_models.exceptions import DataSourceError

SPEC_SUFFIXES = (".yaml", ".yml")
TimestampFormat = Literal["unix_s", "unix_ms", "unix_us", "iso8601"]
RepeatRule = Literal["sum", "max", "count", "first", "last"]
# PROTOCOLS.md: temporal-global = P1/P2, temporal-user = P4, leave-one-out = P3, held-out-users = P5
ProtocolName = Literal["temporal-global", "temporal-user", "leave-one-out", "held-out-users"]
DEFAULT_PROTOCOL: ProtocolName = "temporal-user"


class SpecError(DataSourceError):
    """A dataset spec that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnRoles(_Strict):
    """The source column that plays each role; `event`, `value` and `rating` are optional."""

    user: str = Field(description="The user id column (integers or strings).")
    item: str = Field(description="The item id column (integers or strings).")
    timestamp: str = Field(description="When the interaction happened, in `timestamp_format`.")
    event: str | None = Field(default=None, description="implicit: the event type, weighted by `event_weights`.")
    value: str | None = Field(default=None, description="implicit: a number multiplying the weight (quantity).")
    rating: str | None = Field(default=None, description="explicit only: the rating.")


class ScaleSpec(_Strict):
    """An explicit source's rating scale: inclusive bounds and the step between valid values."""

    min: float
    max: float
    step: PositiveFloat

    def as_scale(self) -> RatingScale:
        return RatingScale(minimum=self.min, maximum=self.max, step=self.step)


class RelevantSpec(_Strict):
    """What counts as relevant in test: a rating (explicit) or a weight (implicit) at least this."""

    min_rating: float | None = None
    min_weight: float | None = None


class ItemsSpec(_Strict):
    """An item table for the content families: an id column and feature columns. `items: file.csv`
    is short for `{path: file.csv}`: the id column named like `columns.item`, a `title` column when
    there is one, every other column a category."""

    path: Path
    id: str | None = Field(default=None, description="The item id column; default: `columns.item`'s name.")
    title: str | None = Field(default=None, description="A free-text column (its words become features).")
    categories: list[str] | None = Field(default=None, description="Categorical columns; default: every other one.")
    list_separator: str | None = Field(default=None, description="Splits a category cell into several values.")


class Feedback(_Strict):
    """What later stages need to know about a source's feedback (derived from its spec)."""

    kind: Literal["explicit", "implicit"] = "explicit"
    exclude_seen: bool = Field(default=True, description="False: seen items are candidates and can be relevant.")
    repeats: RepeatRule = Field(default="last", description="How rows of one (user, item) combine.")
    relevance_threshold: float | None = Field(
        default=4.0, description="Test rating (explicit) or weight (implicit) at or above is relevant; None: all."
    )

    @property
    def relevance_rule(self) -> str:
        """The rule in the spec's own words, for messages."""
        if self.relevance_threshold is None:
            return "every held-out interaction is relevant"
        key = "min_rating" if self.kind == "explicit" else "min_weight"
        return f"relevant.{key}={self.relevance_threshold:g}"


class DatasetSpec(_Strict):
    """One source, described once; see the module docstring and the README for every key."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="The dataset's identity.")
    path: Path = Field(description="CSV, TSV or Parquet, relative to the spec file.")
    feedback: Literal["implicit", "explicit"]
    ids: Literal["any", "integer"] = Field(
        default="any", description="integer: an id that is not an integer is rejected (else text ids are kept)."
    )
    columns: ColumnRoles
    timestamp_format: TimestampFormat | None = Field(
        default=None, description="Default unix_s; a Parquet datetime column needs none."
    )
    event_weights: dict[str, PositiveFloat] | None = Field(
        default=None, description="implicit: weight per event type; an event type not listed is quarantined."
    )
    repeats: RepeatRule | None = Field(default=None, description="Default: sum (implicit), last (explicit).")
    exclude_seen: bool = True
    rating_scale: ScaleSpec | None = None
    relevant: RelevantSpec = Field(default_factory=RelevantSpec)
    items: ItemsSpec | None = Field(default=None, description="Optional item table, relative to the spec file.")
    separator: str | None = Field(default=None, description="Field separator; default from the suffix.")
    header: bool = Field(default=True, description="False: columns are named column_1, column_2, ...")
    earliest_time: datetime | None = Field(
        default=None, description="Interactions before this are implausible and quarantined (default: none)."
    )
    protocol: ProtocolName | None = Field(
        default=None, description="The protocol runs on this dataset use unless told otherwise (default temporal-user)."
    )

    @field_validator("items", mode="before")
    @classmethod
    def _items_shorthand(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetSpec":
        implicit = self.feedback == "implicit"
        if implicit and self.columns.rating is not None:
            raise ValueError("columns.rating: implicit feedback has no rating column (use value or event)")
        if implicit and self.rating_scale is not None:
            raise ValueError("rating_scale: applies to explicit feedback only")
        if implicit and self.relevant.min_rating is not None:
            raise ValueError("relevant.min_rating: implicit feedback has no ratings (use min_weight)")
        if not implicit:
            for key in ("event", "value"):
                if getattr(self.columns, key) is not None:
                    raise ValueError(f"columns.{key}: applies to implicit feedback only")
            if self.columns.rating is None:
                raise ValueError("columns.rating: explicit feedback needs a rating column")
            if self.rating_scale is None:
                raise ValueError("rating_scale: explicit feedback needs {min, max, step}")
            if self.event_weights is not None:
                raise ValueError("event_weights: applies to implicit feedback only")
            if self.relevant.min_weight is not None:
                raise ValueError("relevant.min_weight: explicit feedback is judged by min_rating")
        if (self.event_weights is None) != (self.columns.event is None):
            raise ValueError("event_weights and columns.event go together: name both or neither")
        if self.rating_scale is not None and not self.rating_scale.min < self.rating_scale.max:
            raise ValueError("rating_scale: min must be below max")
        return self

    @property
    def feedback_settings(self) -> Feedback:
        """The feedback semantics every later stage takes."""
        if self.feedback == "implicit":
            return Feedback(
                kind="implicit",
                exclude_seen=self.exclude_seen,
                repeats=self.repeats or "sum",
                relevance_threshold=self.relevant.min_weight,
            )
        return Feedback(
            kind="explicit",
            exclude_seen=self.exclude_seen,
            repeats=self.repeats or "last",
            relevance_threshold=self.relevant.min_rating
            if self.relevant.min_rating is not None
            else self.default_min_rating(),
        )

    def default_min_rating(self) -> float:
        """Without `relevant.min_rating`: the top quarter of the scale, on its grid (4 on 1-5 and 0.5-5)."""
        scale = self.rating_scale
        assert scale is not None  # explicit specs have one (checked at construction)
        steps = -(-(0.75 * (scale.max - scale.min)) // scale.step)
        return scale.min + steps * scale.step

    @property
    def scale(self) -> RatingScale | None:
        return self.rating_scale.as_scale() if self.rating_scale is not None else None

    @property
    def earliest_timestamp(self) -> int:
        """Unix seconds before which a row is implausible (0: the epoch, when the spec names none)."""
        if self.earliest_time is None:
            return 0
        moment = self.earliest_time if self.earliest_time.tzinfo else self.earliest_time.replace(tzinfo=UTC)
        return int(moment.timestamp())


BUILT_IN_SPECS = Path(__file__).parent / "builtin"


def built_in_spec(name: str, folder: Path) -> DatasetSpec:
    """The shipped spec of a built-in dataset (`builtin/<name>.yaml`), its paths in `folder`."""
    return parse_spec(yaml.safe_load((BUILT_IN_SPECS / f"{name}.yaml").read_text()), Path(folder) / f"{name}.yaml")


def is_spec_path(source: str) -> bool:
    """Whether `source` names a spec file (by its suffix)."""
    return Path(source).suffix.lower() in SPEC_SUFFIXES


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "spec"


def _one_line(path: Path, error: ValidationError) -> str:
    """The first problem of a pydantic error as `file: key: what is wrong`."""
    first = error.errors()[0]
    key = _location(first)
    if first["type"] == "extra_forbidden":
        return f"{path}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{path}: missing key '{key}'"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error":
        return f"{path}: {message}"
    return f"{path}: {key}: {message} (got {first.get('input')!r})"


def parse_spec(document: object, path: Path) -> DatasetSpec:
    """A checked spec from its parsed YAML; relative paths are resolved against `path`'s folder."""
    if not isinstance(document, dict):
        raise SpecError(f"{path}: a dataset spec is a YAML mapping of keys (name, path, feedback, columns, ...)")
    try:
        spec = DatasetSpec(**document)
    except ValidationError as error:
        raise SpecError(_one_line(path, error)) from None
    folder = path.parent
    resolved: dict[str, object] = {"path": folder / spec.path}
    if spec.items is not None:
        resolved["items"] = spec.items.model_copy(update={"path": folder / spec.items.path})
    return spec.model_copy(update=resolved)


def load_spec(path: Path | str) -> DatasetSpec:
    """Read and check a spec file; every problem is one `SpecError` line naming the key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"dataset spec not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    spec = parse_spec(document, path)
    if not spec.path.is_file():
        raise SpecError(f"{path}: path: file not found: {spec.path}")
    if spec.items is not None and not spec.items.path.is_file():
        raise SpecError(f"{path}: items.path: file not found: {spec.items.path}")
    return spec
