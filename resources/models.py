"""Where models are tracked and registered: MLflow (SQLite by default, any URI by config)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:  # MLflow and CatBoost load where they are used, not with the code location
    from fraud_assets.modeling.performance import DecayRule
    from fraud_assets.modeling.registry import ModelRegistry
    from fraud_assets.modeling.review import ReviewConfig
    from fraud_assets.modeling.training import TrainingConfig


class ModelStore(dg.ConfigurableResource):
    """The MLflow tracking store and the registered model the platform trains and promotes."""

    tracking_uri: str = Field(
        description="sqlite:///path/mlflow.db, postgresql://…, or http(s):// tracking server"
    )
    model_name: str = Field(default="fraud-detector", description="Registered model name")
    experiment: str = Field(default="fraud-detection", description="MLflow experiment name")
    artifact_location: str | None = Field(
        default=None, description="Where model artifacts go (path, s3://…); default: the store's"
    )

    def registry(self) -> ModelRegistry:
        from fraud_assets.modeling.registry import ModelRegistry
        from fraud_assets.settings import ensure_store_folder

        ensure_store_folder(self.tracking_uri)
        return ModelRegistry(
            self.tracking_uri,
            model_name=self.model_name,
            experiment=self.experiment,
            artifact_location=self.artifact_location,
        )


class ModelTraining(dg.ConfigurableResource):
    """How challengers are trained and reviewed; one resource, so the retraining sensor and a
    materialization from the UI use the same window."""

    window_days: int = Field(default=28, description="Training days")
    validation_days: int = Field(default=7, description="Later days for early stopping + threshold")
    review_days: int = Field(
        default=7, description="Newest labelled days both models are judged on"
    )
    delay_days: int = Field(default=7, description="Label delay: newer days have no labels yet")
    imbalance: Literal["none", "class_weights", "focal"] = Field(
        default="none", description="How the rare fraud class is weighted"
    )
    iterations: int = Field(default=250, description="CatBoost iterations (early stopping on)")
    learning_rate: float = 0.2
    depth: int = 6
    border_count: int = Field(default=64, description="CatBoost histogram bins per feature")
    amount_border_count: int = Field(
        default=4096, description="Bins for tx_amount alone (0: border_count)"
    )
    l2_leaf_reg: float = Field(default=3.0, description="CatBoost L2 regularisation of leaves")
    threshold_policy: Literal["max_recall_at_fpr", "max_expected_money"] = Field(
        default="max_recall_at_fpr", description="How the operating threshold is chosen"
    )
    max_fpr: float = Field(default=0.05, description="FPR bound of max_recall_at_fpr")
    seed: int = 42
    metric: Literal["average_precision", "auc_roc"] = Field(
        default="average_precision", description="Review metric"
    )
    n_resamples: int = Field(default=1000, description="Paired bootstrap resamples (>= 1000)")
    confidence: float = Field(default=0.95, description="Bootstrap interval level")
    retrain_drift_share: float = Field(
        default=0.5, description="Retrain when a batch's share of drifted columns reaches this"
    )
    feedback_features: bool = Field(
        default=False,
        description="Also train on the feedback features (the feedback_features asset's table)",
    )
    decay_metric: Literal["average_precision", "auc_roc", "card_precision_at_100"] = Field(
        default="average_precision", description="Champion performance metric watched for decay"
    )
    decay_max_drop: float = Field(
        default=0.10, description="Decay: the metric this far below the champion's validation"
    )
    decay_sustained: int = Field(
        default=2, description="Decay must last this many labelled batches in a row"
    )
    decay_floor: float | None = Field(
        default=None, description="Decay also when the metric falls below this absolute value"
    )

    def training(self) -> TrainingConfig:
        from fraud_assets.modeling.training import TrainingConfig

        return TrainingConfig(
            window_days=self.window_days,
            validation_days=self.validation_days,
            delay_days=self.delay_days,
            imbalance=self.imbalance,
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            border_count=self.border_count,
            amount_border_count=self.amount_border_count,
            l2_leaf_reg=self.l2_leaf_reg,
            threshold_policy=self.threshold_policy,
            max_fpr=self.max_fpr,
            seed=self.seed,
            feedback_features=self.feedback_features,
        )

    def decay_rule(self) -> DecayRule:
        from fraud_assets.modeling.performance import DecayRule

        return DecayRule(
            self.decay_metric, self.decay_max_drop, self.decay_sustained, self.decay_floor
        )

    def review(self) -> ReviewConfig:
        from fraud_assets.modeling.review import ReviewConfig

        return ReviewConfig(
            review_days=self.review_days,
            delay_days=self.delay_days,
            metric=self.metric,
            n_resamples=self.n_resamples,
            confidence=self.confidence,
            seed=self.seed,
        )

    def days_needed(self) -> int:
        """Days of features a training + review needs, newest unlabelled days included."""
        return self.window_days + self.validation_days + self.delay_days + self.review_days
