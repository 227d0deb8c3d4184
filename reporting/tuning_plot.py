"""A search's picture: each trial's objective value and the best so far, over trial numbers."""

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from reporting.plots import save_figure


def plot_search(values: Sequence[tuple[int, float]], objective: str, maximize: bool, path: Path) -> Path | None:
    """`values`: (trial number, value) of the finished trials, in order; trial 0 (the base configuration)
    is marked. None when no trial finished."""
    if not values:
        return None
    numbers, figures = zip(*values, strict=True)
    pick = max if maximize else min
    best = [pick(figures[: position + 1]) for position in range(len(figures))]
    figure = Figure(figsize=(6.5, 3.2))
    axis = figure.subplots()
    axis.plot(numbers, figures, "o", color="#4477aa", label="trial")
    axis.step(numbers, best, where="post", color="#cc6677", label="best so far")
    if numbers[0] == 0:
        axis.plot([0], [figures[0]], "s", color="#228833", markersize=9, label="trial 0: base configuration")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"{objective} ({'higher' if maximize else 'lower'} is better)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
