"""Family name -> recommender class: the one place the pipeline looks families up (the leaf families
and the composites built on them)."""

import json
from pathlib import Path

from pydantic import BaseModel

from recsys_models.base import MODEL_FILE, Recommender
from recsys_models.datasets.spec import Feedback
from recsys_models.exceptions import UnknownFamilyError
from recsys_models.hybrid.switching import HybridSwitching
from recsys_models.hybrid.weighted import HybridWeighted
from recsys_models.leaf_families import LEAF_FAMILIES
from recsys_models.stacked import Stacked
from recsys_models.two_tower.rerank import TwoTowerRerank

COMPOSITE_FAMILIES: dict[str, type[Recommender]] = {
    cls.family: cls for cls in (TwoTowerRerank, HybridWeighted, HybridSwitching, Stacked)
}  # families built on other (leaf) families: recsys_models/leaf_families.py
FAMILIES: dict[str, type[Recommender]] = LEAF_FAMILIES | COMPOSITE_FAMILIES
# Registered, trained when named (`--families`), left out of a run that names none: `stacked` fits every
# one of its parts twice (for the ranker's data, then on train + valid), so the default run would pay
# for the whole default family list again, twice more (about 10 min on 2 cores). Decided with issue 22.
OPT_IN_FAMILIES: frozenset[str] = frozenset({"stacked"})


def default_families() -> list[str]:
    """The families a run trains when it names none: every registered one except OPT_IN_FAMILIES."""
    return [name for name in FAMILIES if name not in OPT_IN_FAMILIES]


def family_class(name: str) -> type[Recommender]:
    """The recommender class of a family, or an error that lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}") from None


def skip_reason(name: str, feedback: Feedback, has_items: bool = True) -> str | None:
    """Why a family does not apply to a source (its feedback, whether it has an item table), or None."""
    model_class = family_class(name)
    if model_class.needs_item_features and not has_items:
        return "needs item features, and the source has no item table (`items` in its spec)"
    if feedback.kind == "implicit" and model_class.needs_ratings:
        return "learns only to predict ratings, and the source is implicit (no ratings)"
    if feedback.exclude_seen and model_class.recommends_seen:
        return "recommends seen items, and the source excludes them (exclude_seen: true)"
    return None


def make_config(name: str, values: dict | None = None) -> BaseModel:
    """A validated config for a family; unknown keys are an error."""
    return family_class(name).config_type(**(values or {}))


def load_model(directory: Path) -> Recommender:
    """Load a saved model of any family from its folder."""
    family = json.loads((directory / MODEL_FILE).read_text())["family"]
    return family_class(family).load(directory)
