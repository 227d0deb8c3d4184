"""What the pipeline needs to know about a `--dataset` value before reading it: its identity and
its feedback semantics. A value is a built-in name, a dataset spec (.yaml) or a ratings file."""

from dataclasses import dataclass
from pathlib import Path

from recsys_models.datasets.spec import (
    DEFAULT_PROTOCOL,
    DatasetSpec,
    Feedback,
    ProtocolName,
    built_in_spec,
    is_spec_path,
    load_spec,
)
from recsys_models.datasets.spec_source import check_source_columns
from recsys_models.exceptions import DataSourceError

MOVIELENS = ("ml-latest-small", "ml-100k")
SYNTHETIC = "synthetic"
MOVIELENS_FEEDBACK = Feedback()  # explicit, seen items excluded, the latest rating stands, relevant >= 4


@dataclass(frozen=True)
class SourceIdentity:
    """A source's name (MLflow tags, drift reference, promotion) and how its feedback is read."""

    name: str
    feedback: Feedback
    spec: DatasetSpec | None  # a team's own spec; None for the built-ins and plain ratings files
    has_items: bool = True  # an item table (titles, genres, categories) for the content families

    @property
    def protocol(self) -> ProtocolName:
        """The protocol a run uses unless told otherwise: the spec's `protocol`, else temporal-user."""
        return (self.spec.protocol if self.spec else None) or DEFAULT_PROTOCOL


def describe_source(source: str) -> SourceIdentity:
    """The identity of a `--dataset` value; a spec is read and checked, its file's columns too
    (one `SpecError` or `DataSourceError` line)."""
    if is_spec_path(source):
        spec = load_spec(source)
        check_source_columns(spec)
        return SourceIdentity(spec.name, spec.feedback_settings, spec, has_items=spec.items is not None)
    if source in MOVIELENS:  # its shipped spec (builtin/<name>.yaml) states the same feedback
        return SourceIdentity(source, built_in_spec(source, Path(".")).feedback_settings, None)
    if source == SYNTHETIC:
        return SourceIdentity(source, MOVIELENS_FEEDBACK, None)
    if not Path(source).is_file():
        raise DataSourceError(
            f"{source}: no such file (a --dataset is ml-latest-small, ml-100k, synthetic, a spec .yaml or a ratings file)"
        )
    return SourceIdentity(Path(source).stem, MOVIELENS_FEEDBACK, None, has_items=False)
