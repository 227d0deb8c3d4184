"""What the pipeline needs to know about a `--dataset` value before reading it: its identity and
its feedback semantics. A value is a built-in name, a dataset spec (.yaml) or a ratings file."""

from dataclasses import dataclass
from pathlib import Path

from recsys_models.datasets.spec import DatasetSpec, Feedback, is_spec_path, load_spec
from recsys_models.datasets.spec_source import check_source_columns

BUILT_IN = ("ml-latest-small", "ml-100k", "synthetic")
MOVIELENS_FEEDBACK = Feedback()  # explicit, seen items excluded, the latest rating stands, relevant >= 4


@dataclass(frozen=True)
class SourceIdentity:
    """A source's name (MLflow tags, drift reference, promotion) and how its feedback is read."""

    name: str
    feedback: Feedback
    spec: DatasetSpec | None


def describe_source(source: str) -> SourceIdentity:
    """The identity of a `--dataset` value; a spec is read and checked, its file's columns too
    (one `SpecError` or `DataSourceError` line)."""
    if is_spec_path(source):
        spec = load_spec(source)
        check_source_columns(spec)
        return SourceIdentity(spec.name, spec.feedback_settings, spec)
    if source in BUILT_IN:
        return SourceIdentity(source, MOVIELENS_FEEDBACK, None)
    return SourceIdentity(Path(source).stem, MOVIELENS_FEEDBACK, None)
