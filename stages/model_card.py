"""A short Markdown model card for each registered version: data, protocol, metrics, known limits."""

import json
from pathlib import Path
from typing import Any

COLD_START = (
    "Users and items are known when they occur in the training split. An unknown user is "
    "recommended the most popular training items (`cold_user = true` in the output). Items first "
    "seen after training cannot be recommended until the next retrain."
)
CARD_METRICS = (
    "rmse",
    "mae",
    "ndcg_at_10",
    "recall_at_10",
    "precision_at_10",
    "hit_rate_at_10",
    "map_at_10",
    "mrr_at_10",
    "coverage_at_10",
)


def render_model_card(
    family: str,
    metrics: dict[str, Any],
    train_manifest: dict[str, Any],
    split_manifest: dict[str, Any],
    tags: dict[str, str],
    evaluated_manifest: dict[str, Any] | None = None,
    model_dir: Path | None = None,
) -> str:
    """The card's Markdown text. `train_manifest` is the registered model's fit; `evaluated_manifest`,
    when the registered model is a refit on every row, the fit that the metrics judged; `model_dir`, the
    saved model (a learned ranker's report there adds its candidate recall and feature importances)."""
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
            *_ranker_section(model_dir),
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
        return (
            f"{manifest['counts']['users']} users, {manifest['counts']['items']} items, "
            f"fit in {manifest['counts']['fit_seconds']:.1f} s"
        )

    split_rows = f"{counts.get('train_rows', '?')} rows + {counts.get('valid_rows', '?')} validation rows"
    if evaluated is None:
        return [f"- Training: {split_rows}, {described(served)}"]
    return [
        f"- Evaluated: the recipe trained on the split's {split_rows} ({described(evaluated)}), judged on its test part",
        f"- Served: the same recipe refit on every row of the run, test part included ({described(served)})",
    ]


RANKER_REPORT = "ranker_report.json"  # written by a learned ranker's save (recsys_models.stacked)
TOP_FEATURES = 15


def _ranker_section(model_dir: Path | None) -> list[str]:
    """A learned ranker's candidate recall (on its training tail) and feature importances, or nothing."""
    path = model_dir / RANKER_REPORT if model_dir is not None else None
    if path is None or not path.exists():
        return []
    report = json.loads(path.read_text())
    recall = {key: value for key, value in report.items() if key.startswith("candidate_recall_at_")}
    importance = list(report.get("feature_importance", {}).items())[:TOP_FEATURES]
    return [
        "## Learned ranker",
        "",
        f"{report.get('ranker_rounds')} boosting rounds, starting from `{report.get('ranker_base') or 'a constant'}`. "
        "Candidate recall: the share of the ranker's tail's relevant items among the candidates (the union, "
        "then each part's own top N); a weak candidate stage caps what the ranker can reach.",
        "",
        *[f"- {key}: {value:.4f}" for key, value in recall.items()],
        "",
        "| feature | share of split gain |",
        "| --- | --- |",
        *[f"| {name} | {share:.3f} |" for name, share in importance],
        "",
    ]
