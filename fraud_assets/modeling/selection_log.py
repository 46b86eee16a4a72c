"""Model selection in MLflow: one parent run per search, one child run per candidate.

The parent carries the search (metric, folds, budget) and, once finished, the winner's settings
as the tag `fraud.selection_winner` (JSON). `selected_settings` reads the newest finished
search's winner: `challenger_model` trains with those settings.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlflow.exceptions import MlflowException

from fraud_assets.modeling.registry import ModelRegistry
from fraud_assets.modeling.selection import CandidateResult, SelectionResult

KIND_TAG = "fraud.kind"
SELECTION, CANDIDATE = "model_selection", "selection_candidate"
WINNER_TAG = "fraud.selection_winner"
WINNER_FILE = "winner.json"  # the winner's settings and its metrics per fold
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag: the UI shows children under it
FOLD_METRICS = (
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "card_precision_at_100_strict",
    "recall",
    "fpr",
    "recall_scenario_1",
    "recall_scenario_2",
    "recall_scenario_3",
)


class SelectionLog:
    """Open the parent run first, log each candidate as it finishes, then `finish`."""

    def __init__(self, registry: ModelRegistry, run_name: str, tags: dict[str, str]) -> None:
        self.registry = registry
        client = registry.client
        self.parent = client.create_run(
            registry.experiment_id, run_name=run_name, tags={KIND_TAG: SELECTION, **tags}
        ).info.run_id

    def candidate(self, result: CandidateResult) -> str:
        client = self.registry.client
        run = client.create_run(
            self.registry.experiment_id,
            run_name=f"candidate-{result.number}",
            tags={KIND_TAG: CANDIDATE, PARENT_TAG: self.parent},
        ).info.run_id
        for key, value in result.settings.items():
            client.log_param(run, key, str(value))
        for key, value in _finite(result.mean).items():
            if key in FOLD_METRICS:
                client.log_metric(run, f"mean_{key}", value)
        for fold in result.folds:
            for key, value in _finite(fold.metrics).items():
                if key in FOLD_METRICS:
                    client.log_metric(run, f"fold{fold.fold}_{key}", value)
        client.log_metric(run, "seconds", result.seconds)
        client.set_terminated(run)
        return run

    def finish(self, result: SelectionResult) -> dict[str, Any]:
        """Log the search and its winner on the parent run; the winner's settings."""
        client = self.registry.client
        winner = result.winner
        params = {
            "metric": result.metric,
            "folds": str(result.folds),
            "fold_starts": ",".join(d.isoformat() for d in result.fold_starts),
            "budget_seconds": str(result.budget_seconds),
            "candidates": str(len(result.candidates)),
            "winner_candidate": str(winner.number),
            **{f"winner_{k}": str(v) for k, v in winner.settings.items()},
        }
        for key, value in params.items():
            client.log_param(self.parent, key, value)
        for key, value in _finite(winner.mean).items():
            if key in FOLD_METRICS:
                client.log_metric(self.parent, f"winner_mean_{key}", value)
        client.log_metric(self.parent, "seconds", result.seconds)
        client.set_tag(self.parent, WINNER_TAG, json.dumps(winner.settings))
        folds = [{"fold_start": str(f.test_start), **_finite(f.metrics)} for f in winner.folds]
        client.log_dict(self.parent, {"settings": winner.settings, "folds": folds}, WINNER_FILE)
        client.set_terminated(self.parent)
        return winner.settings

    def fail(self) -> None:
        self.registry.client.set_terminated(self.parent, status="FAILED")


def selected_settings(
    registry: ModelRegistry,
) -> tuple[dict[str, Any], str, list[dict[str, float]]] | None:
    """(winner's settings, parent run id, its fold metrics) of the newest finished search."""
    runs = registry.client.search_runs(
        [registry.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = '{SELECTION}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs or WINNER_TAG not in runs[0].data.tags:
        return None
    run_id = runs[0].info.run_id
    folds: list[dict[str, float]] = []
    try:
        path = registry.client.download_artifacts(run_id, WINNER_FILE)
        with open(path) as f:
            folds = json.load(f)["folds"]
    except (OSError, ValueError, KeyError, MlflowException):
        pass  # the settings alone are enough to train; the card then lacks the folds
    return json.loads(runs[0].data.tags[WINNER_TAG]), run_id, folds


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}
