"""The leaf families, by name: those built on no other family, and so what a composite family (the
blending hybrids, the two-tower re-ranker, stacked) may take as a part.

Composite families import this module; `recsys_models.registry` imports both the leaves and the
composites and is the lookup everything else uses. Nothing below the registry imports it, so the
family modules have no import circle (`tests/test_import_cycles.py` checks).
"""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from recsys_models.als import ALS
from recsys_models.base import MODEL_FILE, Recommender
from recsys_models.bias import Bias
from recsys_models.biased_mf import MF, BiasedMF
from recsys_models.bpr_mf import BPRMF
from recsys_models.content import ContentTFIDF
from recsys_models.ease import EASE
from recsys_models.exceptions import UnknownFamilyError
from recsys_models.hybrid.feature_mf import HybridFeatures
from recsys_models.knn import ItemKNN, UserKNN
from recsys_models.ncf import GMF, MLP, NeuMF
from recsys_models.popularity import Popularity
from recsys_models.repeat import Repeat
from recsys_models.sequential import GRU4Rec, Markov, SASRec
from recsys_models.two_tower.model import TwoTower
from recsys_models.vae import MultDAE, MultVAE

LEAF_FAMILIES: dict[str, type[Recommender]] = {
    cls.family: cls
    for cls in (
        Popularity,
        BiasedMF,
        Bias,
        ItemKNN,
        UserKNN,
        MF,
        BPRMF,
        ALS,
        EASE,
        GMF,
        MLP,
        NeuMF,
        MultVAE,
        MultDAE,
        GRU4Rec,
        SASRec,
        Markov,
        TwoTower,
        ContentTFIDF,
        HybridFeatures,
        Repeat,
    )
}


def leaf_class(name: str) -> type[Recommender]:
    """The class of a leaf family, or an error that names the families a part may be."""
    try:
        return LEAF_FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(
            f"{name!r} cannot be a part: a part is a family built on no other, one of {', '.join(sorted(LEAF_FAMILIES))}"
        ) from None


def make_leaf_config(name: str, values: dict[str, Any] | None = None) -> BaseModel:
    """A part's validated config; unknown keys are an error."""
    return leaf_class(name).config_type(**(values or {}))


def load_leaf(directory: Path) -> Recommender:
    """Load a saved part (a leaf family's model) from its folder."""
    family = json.loads((directory / MODEL_FILE).read_text())["family"]
    return leaf_class(family).load(directory)
