"""A search's picture: each trial's objective value and the best so far over trial numbers, the pruned
trials at the figure they were stopped at, and (when known) each parameter's importance."""

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from reporting.plots import save_figure


def plot_search(
    values: Sequence[tuple[int, float]],
    objective: str,
    maximize: bool,
    path: Path,
    pruned: Sequence[tuple[int, float]] = (),
    importances: Mapping[str, float] | None = None,
) -> Path | None:
    """`values`: (trial number, value) of the completed trials, in order; trial 0 (the base
    configuration) is marked. `pruned`: (trial number, last reported value) of the pruned ones.
    `importances`: parameter -> share of the objective's variance (fANOVA), drawn beside. None when
    no trial completed."""
    if not values:
        return None
    numbers, figures = zip(*values, strict=True)
    pick = max if maximize else min
    best = [pick(figures[: position + 1]) for position in range(len(figures))]
    figure = Figure(figsize=(10.5 if importances else 6.5, 3.2))
    axes = figure.subplots(1, 2, width_ratios=(2, 1)) if importances else [figure.subplots()]
    axis = axes[0]
    axis.plot(numbers, figures, "o", color="#4477aa", label="trial")
    if pruned:
        axis.plot(*zip(*pruned, strict=True), "x", color="#999999", label="pruned (last epoch's figure)")
    axis.step(numbers, best, where="post", color="#cc6677", label="best so far")
    if numbers[0] == 0:
        axis.plot([0], [figures[0]], "s", color="#228833", markersize=9, label="trial 0: base configuration")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"{objective} ({'higher' if maximize else 'lower'} is better)")
    axis.legend(fontsize=8)
    if importances:
        ranked = sorted(importances.items(), key=lambda item: item[1])
        axes[1].barh([name for name, _ in ranked], [share for _, share in ranked], color="#4477aa")
        axes[1].set_xlabel("importance (fANOVA)")
    figure.tight_layout()
    return save_figure(figure, path)
