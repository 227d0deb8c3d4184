"""The run summary's warm vs cold-item table: each family's headline ranking figures on the
ordinary test (warm candidates) beside its figures on the cold-item slice (`cold_items_*`).

Families that cannot score items absent from training (their cold-item figures are zeros) are
named on one line under the table instead of one row of zeros each: the table shows which
families reach new items at all, and nothing is hidden.
"""

from collections.abc import Mapping
from typing import Any

from reporting.formatting import format_interval

WARM = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")
COLD = tuple(f"cold_items_{name}" for name in WARM)


def format_warm_cold_table(metrics_by_family: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per family: warm NDCG/recall/HR@10 and users, then the same on the cold-item slice
    (candidates: the cold items only), its users, and whether the family can score cold items.
    `metrics_by_family` maps a family to its metrics.json; families without the slice show `-`."""
    width = max([12] + [len(name) + 2 for name in metrics_by_family])
    header = (
        f"{'family':<{width}}"
        + "".join(f"{name:>24}" for name in WARM)
        + f"{'users':>7}  |"
        + "".join(f"{name.removeprefix('cold_items_'):>24}" for name in COLD)
        + f"{'users':>7}  cold items"
    )
    lines = [
        f"{'':<{width}}{'warm (ordinary test)':^{24 * len(WARM) + 7}}  |{'cold-item slice':^{24 * len(COLD) + 7}}",
        header,
    ]
    cannot = [family for family, metrics in metrics_by_family.items() if metrics.get("cold_items_scored") == 0]
    for family, metrics in metrics_by_family.items():
        if family in cannot:
            continue
        warm = "".join(f"{format_interval(metrics, name):>24}" for name in WARM)
        cold = "".join(f"{format_interval(metrics, name):>24}" for name in COLD)
        scored = metrics.get("cold_items_scored")
        status = "-" if scored is None else "scored from features"
        lines.append(
            f"{family:<{width}}{warm}{metrics.get('n_eval_users', '-'):>7}  |{cold}"
            f"{metrics.get('cold_items_n_eval_users', '-'):>7}  {status}"
        )
    sliced = [metrics for metrics in metrics_by_family.values() if "cold_items_random_ndcg_at_10" in metrics]
    if sliced:  # the slice is the same for every family of a run
        metrics = sliced[0]
        random = "".join(f"{metrics[f'cold_items_random_{name}']:>24.4f}" for name in WARM)
        lines += [
            f"{'(random)':<{width}}{'':>{24 * len(WARM) + 7}}  |{random}"
            f"{metrics['cold_items_n_eval_users']:>7}  expected value of a random order",
            f"cold-item slice: {metrics['cold_items_n_candidate_items']} candidate items absent from train, "
            "with features; relevant = each user's relevant test rows on them (as on the warm test)",
        ]
    if cannot:
        lines.append(f"cannot score cold items (zeros on the slice; warm figures above): {', '.join(cannot)}")
    return "\n".join(lines)
