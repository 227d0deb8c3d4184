"""The run's pictures as PNG files: training curves, family comparison with intervals, recall@k
curves and popularity bias. Each function reads plain data and writes one file atomically.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no global state, no GUI
backend, safe in the flow's worker threads."""

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from recsys_models.registry import FAMILIES

COMPARED = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "map_at_10")
DPI = 90
LEGEND_ROWS = 12  # entries per legend column: 23 families take two columns beside the plot
LEGEND_COLUMN_INCHES = 1.7  # the figure widens by this per legend column, so the plot keeps its width


def save_figure(figure: Figure, path: Path) -> Path:
    """Write `figure` as PNG beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as temp:
        figure.savefig(temp.name, dpi=DPI)
    os.chmod(temp.name, 0o644)
    os.replace(temp.name, path)
    return path


def plot_training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> Path | None:
    """One panel per family with per-epoch history: training loss (and the refit's) on the left
    axis, the validation metric on the right. None when no family has a history."""
    families = {family: history for family, history in histories.items() if history}
    if not families:
        return None
    figure = Figure(figsize=(7, 2.6 * len(families)))
    axes = figure.subplots(len(families), 1, squeeze=False)
    for axis, (family, history) in zip(axes[:, 0], families.items(), strict=True):
        names = sorted({name for record in history for name in record if _is_curve(name)})
        right = axis.twinx() if any(name.startswith("valid_") for name in names) else None
        for name in names:
            rows = [(record["epoch"], record[name]) for record in history if name in record]
            target = right if name.startswith("valid_") and right is not None else axis
            style = "--" if name.startswith("refit_") else "-"
            target.plot(*zip(*rows, strict=True), style, marker=".", label=name, color=_colour(name))
        axis.set_title(family, loc="left", fontsize=10)
        axis.set_ylabel("loss")
        handles = axis.get_legend_handles_labels()
        if right is not None:
            right.set_ylabel("validation")
            handles = tuple(a + b for a, b in zip(handles, right.get_legend_handles_labels(), strict=True))
        axis.legend(*handles, fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("epoch")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_metric_comparison(
    metrics: Mapping[str, Mapping[str, Any]], path: Path, names: Sequence[str] = COMPARED
) -> Path | None:
    """Horizontal bars per family for each metric, with the 95% interval over users as error bars
    (and RMSE, lower is better, for the families that predict ratings); a family evaluated on no
    user (its value NaN or null) is marked so. None when no family has a value."""
    panels = [name for name in (*names, "rmse") if any(_is_number(entry.get(name)) for entry in metrics.values())]
    if not panels:
        return None
    figure = Figure(figsize=(3.2 * len(panels), 0.45 * len(metrics) + 1.6))
    axes = figure.subplots(1, len(panels), squeeze=False)
    families = list(metrics)  # the same rows in every panel; a family without the metric has no bar
    positions = np.arange(len(families))
    for axis, name in zip(axes[0], panels, strict=True):
        values = np.array([_number(metrics[family].get(name)) for family in families], dtype=float)
        low = np.array([metrics[family].get(f"{name}_ci_low", np.nan) for family in families], dtype=float)
        high = np.array([metrics[family].get(f"{name}_ci_high", np.nan) for family in families], dtype=float)
        errors = np.nan_to_num(np.vstack([values - low, high - values]), nan=0.0).clip(min=0.0)
        axis.barh(
            positions, np.nan_to_num(values), xerr=errors, color=[_colour(family) for family in families], capsize=3
        )
        for position, family in zip(positions, families, strict=True):
            if name in metrics[family] and not _is_number(metrics[family][name]):
                axis.text(0, position, " no users evaluated", va="center", fontsize=7, color="grey")
        axis.set_yticks(positions, families if axis is axes[0, 0] else [""] * len(families))
        axis.invert_yaxis()
        axis.set_title(name + (" (lower is better)" if name == "rmse" else ""), fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle("families on the test split (95% bootstrap intervals over users)", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_recall_curves(metrics: Mapping[str, Mapping[str, Any]], path: Path, metric: str = "recall") -> Path | None:
    """`metric`@k against k for each family, with the 95% band. None when no family has it."""
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axis = figure.subplots()
    drawn = False
    for family, entry in metrics.items():
        cutoffs = sorted(int(key.rsplit("_", 1)[1]) for key in entry if _is_cutoff_key(key, metric))
        if not cutoffs:
            continue
        values = [entry[f"{metric}_at_{k}"] for k in cutoffs]
        if not any(_is_number(value) for value in values):
            continue  # a family evaluated on no user has nothing to draw
        axis.plot(cutoffs, values, marker="o", label=family, color=_colour(family))
        low = [entry.get(f"{metric}_at_{k}_ci_low", value) for k, value in zip(cutoffs, values, strict=True)]
        high = [entry.get(f"{metric}_at_{k}_ci_high", value) for k, value in zip(cutoffs, values, strict=True)]
        axis.fill_between(cutoffs, low, high, alpha=0.15, color=_colour(family))
        drawn = True
    if not drawn:
        return None
    axis.set_xscale("log")
    axis.set_xticks(
        sorted({int(key.rsplit("_", 1)[1]) for e in metrics.values() for key in e if _is_cutoff_key(key, metric)})
    )
    axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel("k (list length)")
    axis.set_ylabel(f"{metric}@k")
    axis.set_title(f"{metric}@k (95% bands over users)", fontsize=10)
    axis.grid(alpha=0.3)
    _legend_beside(figure, axis)
    return save_figure(figure, path)


def popularity_deciles(
    item_counts: Mapping[int, int], recommended: Mapping[str, Sequence[int]], bins: int = 10
) -> dict[str, np.ndarray]:
    """Share of each family's recommendations (and of the training interactions) falling in each
    popularity bin of the catalogue: bin 0 holds the most popular `1/bins` of the items. The
    catalogue itself is `1/bins` per bin by construction."""
    ranked = sorted(item_counts, key=lambda item: (-item_counts[item], item))
    bin_of = {item: position * bins // len(ranked) for position, item in enumerate(ranked)}
    counts = np.array([item_counts[item] for item in ranked], dtype=float)
    positions = np.arange(len(ranked)) * bins // len(ranked)
    shares = {"training interactions": np.bincount(positions, weights=counts, minlength=bins) / counts.sum()}
    for family, items in recommended.items():
        found = np.array([bin_of[item] for item in items if item in bin_of], dtype=int)
        if found.size:
            shares[family] = np.bincount(found, minlength=bins) / found.size
    return shares


def plot_popularity_bias(shares: Mapping[str, np.ndarray], path: Path) -> Path | None:
    """Recommended popularity against the catalogue: grouped bars, the share of each family's
    recommendations (and of the training interactions) per popularity decile of the catalogue."""
    if len(shares) <= 1:
        return None
    figure = Figure(figsize=(8, 4), layout="constrained")
    axis = figure.subplots()
    bins = len(next(iter(shares.values())))
    x = np.arange(bins)
    width = 0.8 / len(shares)
    for offset, (name, share) in enumerate(shares.items()):
        hatch = "//" if name == "training interactions" else None
        colour = "lightgrey" if name == "training interactions" else _colour(name)
        axis.bar(x + (offset - (len(shares) - 1) / 2) * width, share, width, label=name, color=colour, hatch=hatch)
    axis.axhline(1 / bins, color="black", linestyle=":", label="catalogue (each decile holds 10% of items)")
    axis.set_xticks(x, [f"{b * 100 // bins}-{(b + 1) * 100 // bins}%" for b in x], rotation=30, fontsize=8)
    axis.set_xlabel("catalogue items by training popularity (most popular first)")
    axis.set_ylabel("share of top-10 recommendations")
    axis.set_title("popularity bias: where the recommendations fall in the catalogue", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    _legend_beside(figure, axis)
    return save_figure(figure, path)


def _legend_beside(figure: Figure, axis: Any) -> None:
    """`axis`'s legend to the right of the plot, in columns of `LEGEND_ROWS` entries (the figure
    widens to hold them): two dozen families fit without hiding the data or being cut off. Needs the
    constrained layout, which makes room for it."""
    handles, labels = axis.get_legend_handles_labels()
    columns = math.ceil(len(labels) / LEGEND_ROWS)
    figure.set_figwidth(figure.get_figwidth() + LEGEND_COLUMN_INCHES * columns)
    figure.legend(handles, labels, loc="outside right upper", ncols=columns, fontsize=8, frameon=False)


def _is_number(value: Any) -> bool:
    """A finite number (not None, NaN or text): something to draw."""
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any) -> float:
    """`value` as a float to draw, NaN when it is none."""
    return float(value) if _is_number(value) else np.nan


def _is_curve(name: str) -> bool:
    """Losses (left axis) and validation metrics (right axis); not timings or counters."""
    return name.endswith("loss") or name.startswith("valid_")


def _is_cutoff_key(key: str, metric: str) -> bool:
    head, _, tail = key.rpartition("_at_")
    return head == metric and tail.isdigit()


def _colour(name: str) -> str:
    """A stable colour per family (its place in the registry), so it matches across plots."""
    palette = matplotlib.colormaps["tab20"]  # a list of N = 20 colours: palette(i) is the i-th
    position = list(FAMILIES).index(name) * 2 if name in FAMILIES else sum(map(ord, name))
    return matplotlib.colors.to_hex(palette(position % palette.N))
