"""Warm starts: a torch family's fit that begins from an earlier fit's parameters instead of a random
initialisation, for a refresh on newer data (issue 20) that costs a few epochs, not a retrain.

`WarmStart.between(earlier, users, items)` pairs the earlier model's trained parameters with the
new fit's vocabularies; while `starting_from(warm)` is active, the shared epoch loop
(`training.run_epochs`) loads them into every network it trains and caps its epochs. A parameter
is matched by name. A user or item table (an axis whose length is the vocabulary's before and
after, or, in a parameter whose name says user or item, the vocabulary's plus the same few padding
rows, e.g. a sequence model's padding item) is copied row by row by raw id, so users and items that are new keep their fresh initialisation and learn in the warm epochs;
a parameter of the same shape otherwise is copied whole; anything else (another architecture)
keeps its initialisation. Buffers are never copied: statistics of the data (a global mean) are the
new data's.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch

from recsys_models.interactions import IdVocabulary

WARM_EPOCHS = 5  # epochs a warm-started loop may run: the parameters start near their optimum
_MAX_PADDING = 2  # rows a table may hold beyond its vocabulary (padding, mask or unknown rows)
_active: ContextVar["WarmStart | None"] = ContextVar("warm_start", default=None)


def trained_parameters(network: torch.nn.Module | None) -> dict[str, torch.Tensor] | None:
    """A trained network's parameters by name, detached on the CPU: what a warm start copies."""
    if network is None:
        return None
    return {name: parameter.detach().cpu().clone() for name, parameter in network.named_parameters()}


@dataclass(frozen=True)
class WarmStart:
    """An earlier fit's parameters and, per axis kind, where each new index was before (-1: new)."""

    parameters: dict[str, torch.Tensor]
    earlier_sizes: dict[str, int]  # "users" and "items" of the earlier fit
    earlier_rows: dict[str, np.ndarray]  # per kind, each new index's earlier index, -1 when new
    max_epochs: int = WARM_EPOCHS

    @classmethod
    def between(
        cls,
        parameters: dict[str, torch.Tensor],
        earlier: tuple[IdVocabulary, IdVocabulary],
        now: tuple[IdVocabulary, IdVocabulary],
        max_epochs: int = WARM_EPOCHS,
    ) -> "WarmStart":
        """The warm start from `parameters` fitted on the `earlier` (users, items) to a fit on `now`'s."""
        kinds = ("users", "items")
        return cls(
            parameters,
            {kind: len(vocabulary) for kind, vocabulary in zip(kinds, earlier, strict=True)},
            {kind: before.index_of(after.ids) for kind, before, after in zip(kinds, earlier, now, strict=True)},
            max_epochs,
        )

    def load_into(self, network: torch.nn.Module) -> dict[str, int]:
        """Copy what matches into `network`'s parameters; returns how many were remapped, copied, kept."""
        counts = {"remapped": 0, "copied": 0, "kept": 0}
        with torch.no_grad():
            for name, parameter in network.named_parameters():
                earlier = self.parameters.get(name)
                table = None if earlier is None else self._table_axis(name, earlier.shape, parameter.shape)
                if earlier is not None and table is not None:
                    parameter.copy_(self._remapped(earlier, parameter, *table))
                    counts["remapped"] += 1
                elif earlier is not None and earlier.shape == parameter.shape:
                    parameter.copy_(earlier.to(parameter.device))
                    counts["copied"] += 1
                else:
                    counts["kept"] += 1
        return counts

    def _table_axis(self, name: str, before: torch.Size, after: torch.Size) -> tuple[int, str, int] | None:
        """(axis, kind, padding) of a user or item table, or None; a name naming one kind settles ties."""
        if len(before) != len(after) or len(after) == 0:
            return None
        found = []
        for axis in range(len(after)):
            if any(before[other] != after[other] for other in range(len(after)) if other != axis):
                continue
            for kind, rows in self.earlier_rows.items():
                padding = before[axis] - self.earlier_sizes[kind]
                named = kind.rstrip("s") in name.lower()
                if 0 <= padding <= _MAX_PADDING and after[axis] - rows.size == padding and (named or not padding):
                    found.append((axis, kind, padding))
        if len(found) > 1:
            found = [match for match in found if match[1].rstrip("s") in name.lower()]
        return found[0] if len(found) == 1 else None

    def _remapped(self, earlier: torch.Tensor, fresh: torch.Tensor, axis: int, kind: str, padding: int) -> torch.Tensor:
        """`fresh` with the earlier rows of every index that existed before (and the padding rows) copied in.

        Padding rows lie before the vocabulary's rows (a padding item 0, items from 1) when the
        table is larger than its vocabulary; that is how every family here lays them out."""
        rows = self.earlier_rows[kind]
        kept = np.flatnonzero(rows >= 0)
        result = fresh.detach().clone()
        earlier = earlier.to(fresh.device)
        target = torch.as_tensor(kept + padding, device=fresh.device)
        source = torch.as_tensor(rows[kept] + padding, device=fresh.device)
        result.index_copy_(axis, target, earlier.index_select(axis, source))
        if padding:
            result.narrow(axis, 0, padding).copy_(earlier.narrow(axis, 0, padding))
        return result


@contextmanager
def starting_from(warm: WarmStart) -> Iterator[WarmStart]:
    """Every network `run_epochs` trains inside the block starts from `warm` and runs at most its epochs."""
    token = _active.set(warm)
    try:
        yield warm
    finally:
        _active.reset(token)


def active_warm_start() -> WarmStart | None:
    """The warm start of the enclosing `starting_from` block, if any."""
    return _active.get()
