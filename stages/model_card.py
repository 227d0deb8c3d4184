"""A short Markdown model card for each registered version: data, protocol, metrics, known limits."""

from typing import Any

COLD_START = (
    "Users and items are known when they occur in the training split. An unknown user is "
    "recommended the most popular training items (`cold_user = true` in the output). Items first "
    "seen after training cannot be recommended until the next retrain."
)
CARD_METRICS = ("rmse", "mae", "ndcg_at_10", "recall_at_10", "precision_at_10", "hit_rate_at_10", "map_at_10",
                "mrr_at_10", "coverage_at_10")


def render_model_card(
    family: str, metrics: dict[str, Any], train_manifest: dict[str, Any], split_manifest: dict[str, Any],
    tags: dict[str, str], evaluated_manifest: dict[str, Any] | None = None,
) -> str:
    """The card's Markdown text. `train_manifest` is the registered model's fit; `evaluated_manifest`,
    when the registered model is a refit on every row, the fit that the metrics judged."""
    rows = []
    for name in CARD_METRICS:
        if name not in metrics:
            continue
        low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
        interval = f"[{low:.4f}, {high:.4f}]" if isinstance(low, float) and isinstance(high, float) else "-"
        rows.append(f"| {name} | {metrics[name]:.4f} | {interval} |")
    counts = split_manifest.get("counts", {})
    config = train_manifest["parameters"]["config"]
    rating_note = (
        "predicts ratings (RMSE/MAE below) and ranks items"
        if "rmse" in metrics
        else "ranks items only; it does not predict ratings, so no RMSE/MAE is reported"
    )
    return "\n".join(
        [
            f"# Model card: {family}",
            "",
            f"- Dataset: `{tags.get('dataset')}`, data hash `{tags.get('data_hash', '')[:16]}`",
            f"- Protocol: `{metrics.get('protocol')}` (see PROTOCOLS.md); pipeline run `{tags.get('pipeline_run_id')}`",
            f"- Code version: `{tags.get('code_version')}`; seed {train_manifest['parameters']['seed']}",
            *_fits(counts, train_manifest, evaluated_manifest),
            f"- The family {rating_note}.",
            "",
            "## Metrics (95% interval over users)",
            "",
            f"Evaluated on {metrics.get('n_eval_users')} users and {metrics.get('n_eval_rows')} rating rows.",
            "",
            "| metric | value | 95% interval |",
            "| --- | --- | --- |",
            *rows,
            "",
            "## Hyperparameters",
            "",
            *[f"- `{key}`: {value}" for key, value in config.items()],
            "",
            "## Known limits",
            "",
            f"- Cold start: {COLD_START}",
            "- Figures on a small test set are noisy: differences inside the intervals are not differences.",
            "",
        ]
    )


def _fits(counts: dict[str, Any], served: dict[str, Any], evaluated: dict[str, Any] | None) -> list[str]:
    """The card's lines on what was fitted: the evaluated recipe and, when it differs, the served refit."""
    def described(manifest: dict[str, Any]) -> str:
        return (f"{manifest['counts']['users']} users, {manifest['counts']['items']} items, "
                f"fit in {manifest['counts']['fit_seconds']:.1f} s")  # fmt: skip

    split_rows = f"{counts.get('train_rows', '?')} rows + {counts.get('valid_rows', '?')} validation rows"
    if evaluated is None:
        return [f"- Training: {split_rows}, {described(served)}"]
    return [
        f"- Evaluated: the recipe trained on the split's {split_rows} ({described(evaluated)}), judged on its test part",
        f"- Served: the same recipe refit on every row of the run, test part included ({described(served)})",
    ]
