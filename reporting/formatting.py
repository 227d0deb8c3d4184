"""How a metric is written for people: the value and, when it has one, its 95% interval."""

from collections.abc import Mapping
from typing import Any

from stages.results import PromotionDecision


def format_interval(metrics: Mapping[str, Any], name: str, digits: int = 4) -> str:
    """`value [ci_low, ci_high]` when the metric has an interval, the value alone when it has
    none (or a NaN bound), `-` when it is absent; integers (counts) as they are."""
    value = metrics.get(name)
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if low is None or high is None or low != low:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits - 1}f}, {high:.{digits - 1}f}]"


def verdict(decision: PromotionDecision) -> str:
    """What a registration decision left the version as: champion, challenger, or unchanged
    (a rerun that registered nothing new)."""
    if decision.promoted is None or decision.reason.startswith("unchanged"):
        return "unchanged"
    return "champion" if decision.promoted else "challenger"
