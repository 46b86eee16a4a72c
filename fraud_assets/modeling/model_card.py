"""The model card logged with every version: what the model is, what it learnt from, how it did.

One dict (logged as `model_card.json`) and its Markdown rendering (`model_card.md`): the data
window and its batches, the settings and where they came from, the threshold policy and its
operating point on the validation slice, validation metrics (per fraud scenario when the data
says which), the prequential fold metrics of the model selection that chose the settings (when
one did), and the feature importance.
"""

from __future__ import annotations

import math
from typing import Any

from fraud_assets.modeling.metrics import CARD_PRECISION_DEFINITION
from fraud_assets.modeling.training import TrainedModel

CARD_METRICS = (
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "card_precision_at_100_strict",
    "precision",
    "recall",
    "fpr",
    "f_beta",
    "recall_scenario_1",
    "recall_scenario_2",
    "recall_scenario_3",
)


def feature_importance(trained: TrainedModel) -> dict[str, float]:
    """CatBoost's PredictionValuesChange importance (sums to 100), largest first."""
    values = trained.model.get_feature_importance()
    pairs = sorted(zip(trained.feature_names, values, strict=True), key=lambda p: -p[1])
    return {name: round(float(v), 4) for name, v in pairs}


def build_card(
    trained: TrainedModel,
    batches: list[str],
    settings_from: str,
    folds: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The card as a plain dict. `folds`: the selection's per-fold metrics of these settings."""
    window = trained.window
    valid = trained.validation_metrics
    rows = valid.get("n_rows", 0.0)
    alerts = valid.get("tp", 0.0) + valid.get("fp", 0.0)
    return {
        "data_window": {
            "train": f"{window.train_start}..{window.train_end}",
            "validation": f"{window.valid_start}..{window.valid_end}",
            "label_gap_until": str(window.data_end),
            "training_rows": window.rows,
            "training_frauds": window.frauds,
            "validation_rows": window.valid_rows,
            "validation_frauds": window.valid_frauds,
            "batches": batches,
        },
        "settings_from": settings_from,
        "settings": dict(trained.params),
        "best_iteration": trained.best_iteration,
        "threshold": {
            "policy": str(trained.threshold.policy),
            "max_fpr": trained.threshold.max_fpr,
            "threshold": trained.threshold.threshold,
            "validation_recall": valid.get("recall"),
            "validation_fpr": valid.get("fpr"),
            "validation_precision": valid.get("precision"),
            "validation_alert_rate": alerts / rows if rows else None,
        },
        "validation_metrics": {k: _clean(valid[k]) for k in CARD_METRICS if k in valid},
        "card_precision": CARD_PRECISION_DEFINITION,
        "selection_folds": folds or [],
        "feature_importance": feature_importance(trained),
    }


def render(card: dict[str, Any], title: str = "Model card") -> str:
    """Markdown for people: the MLflow UI shows it beside the model."""
    w, t = card["data_window"], card["threshold"]
    lines = [
        f"# {title}",
        "",
        "## Data",
        f"- training days {w['train']} ({w['training_rows']:,} rows, {w['training_frauds']:,} "
        "frauds)",
        f"- validation days {w['validation']} ({w['validation_rows']:,} rows, "
        f"{w['validation_frauds']:,} frauds); labels newer than {w['validation'][-10:]} unused",
        f"- batches: {', '.join(w['batches']) or 'n/a'}",
        "",
        "## Settings",
        f"- from: {card['settings_from']}; best iteration {card['best_iteration']}",
        *(f"- `{k}`: {v}" for k, v in sorted(card["settings"].items()) if k != "features"),
        "",
        "## Operating point",
        f"- policy `{t['policy']}` (max FPR {t['max_fpr']}), threshold {t['threshold']:.6f}",
        f"- on validation: recall {_fmt(t['validation_recall'])}, FPR "
        f"{_fmt(t['validation_fpr'])}, precision {_fmt(t['validation_precision'])}, alert rate "
        f"{_fmt(t['validation_alert_rate'])}",
        "",
        "## Validation metrics",
        f"Card precision: {card['card_precision']}.",
        "",
        "| metric | value |",
        "|---|---:|",
        *(f"| {k} | {_fmt(v)} |" for k, v in card["validation_metrics"].items()),
    ]
    if card["selection_folds"]:
        keys = [k for k in CARD_METRICS if k in card["selection_folds"][0]]
        lines += [
            "",
            "## Prequential folds of the model selection (these settings)",
            "",
            "| fold | " + " | ".join(keys) + " |",
            "|---|" + "---:|" * len(keys),
            *(
                f"| {i} | " + " | ".join(_fmt(f.get(k)) for k in keys) + " |"
                for i, f in enumerate(card["selection_folds"])
            ),
        ]
    lines += [
        "",
        "## Feature importance",
        "",
        "| feature | importance |",
        "|---|---:|",
        *(f"| `{k}` | {v:.2f} |" for k, v in card["feature_importance"].items()),
    ]
    return "\n".join(lines) + "\n"


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _fmt(value: float | None) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )
