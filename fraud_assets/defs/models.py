"""Training and champion–challenger review as assets: thin wrappers around fraud_assets.modeling."""

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, MODELS_TEAM, TRAINING_POOL, tags
from fraud_assets.defs.keys import FEATURES as FEATURES_KEY
from resources.models import ModelStore, ModelTraining
from resources.storage import LakeStore

if TYPE_CHECKING:  # CatBoost, MLflow and Polars load in the run that trains, not at import
    import polars as pl

    from fraud_assets.lake import Lake

TRIGGER_TAG = "fraud/trigger"  # why a training run was requested (new batches, drift)


def latest_features(lake: "Lake", days: int) -> "tuple[pl.DataFrame, dt.date]":
    """The lake's newest labelled feature rows; an empty lake fails the step, named."""
    from fraud_assets.batch.training_data import NoFeatureBatchesError
    from fraud_assets.batch.training_data import latest_features as read

    try:
        return read(lake, days)
    except NoFeatureBatchesError as e:
        raise dg.Failure(description=str(e), allow_retries=False) from e


@dg.asset(
    deps=[dg.AssetDep(FEATURES_KEY, partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    kinds={"catboost", "mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("models", "none"),
    code_version=CODE_VERSIONS["challenger_model"],
    pool=TRAINING_POOL,
    description=(
        "A CatBoost model trained on a rolling window of feature batches (labels older than the "
        "delay only), logged to MLflow and registered as a new version with alias `challenger`."
    ),
)
def challenger_model(
    context: dg.AssetExecutionContext,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    import polars as pl

    from fraud_assets.modeling.review import training_end
    from fraud_assets.modeling.training import train_model

    features, data_end = latest_features(lake.lake(), model_training.days_needed())
    until = training_end(data_end, model_training.review())
    try:
        trained = train_model(features, until, model_training.training())
    except ValueError as e:  # not enough data, a missing day, no fraud: say which
        raise dg.Failure(description=str(e), allow_retries=False) from e
    window = trained.window
    used = features.filter(
        pl.col("tx_datetime").dt.date().is_between(window.train_start, window.valid_end)
    )
    batches = sorted(used["batch_id"].unique().to_list())
    version = models.registry().log_challenger(
        trained,
        tags={
            "dagster_run_id": context.run_id,
            "dagster_partitions": ",".join(batches)[:4000],
            "trigger": context.run.tags.get(TRIGGER_TAG, "manual"),
        },
    )
    metrics = trained.validation_metrics
    context.log.info(
        f"Registered {version.name} v{version.version} as challenger: validation AP "
        f"{metrics['average_precision']:.4f}, threshold {trained.threshold.threshold:.4f}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version.version,
            "mlflow_run_id": version.run_id or "",
            "threshold": trained.threshold.threshold,
            "threshold_policy": str(trained.threshold.policy),
            "train_window": f"{window.train_start} .. {window.train_end}",
            "validation_window": f"{window.valid_start} .. {window.valid_end}",
            "dagster/row_count": window.rows,
            "batches": len(batches),
            "best_iteration": trained.best_iteration,
            **{f"validation_{k}": float(metrics[k]) for k in _HEADLINE if k in metrics},
        }
    )


_HEADLINE = ("auc_roc", "average_precision", "card_precision_at_100", "recall", "fpr", "f_beta")


@dg.asset(
    deps=[challenger_model],
    group_name="models",
    kinds={"mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("models", "none"),
    code_version=CODE_VERSIONS["champion_review"],
    pool=TRAINING_POOL,
    description=(
        "Scores champion and challenger on the same newest labelled rows; a paired bootstrap of "
        "the metric difference decides; the alias `champion` moves only when the whole interval "
        "is above 0. The first model becomes champion."
    ),
)
def champion_review(
    context: dg.AssetExecutionContext,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    from fraud_assets.modeling.champion_snapshot import sync_champion
    from fraud_assets.modeling.review import ReviewError, apply_review, review_challenger

    registry, store = models.registry(), lake.lake()
    try:
        outcome = review_challenger(
            registry, model_training.review(), lambda days: latest_features(store, days)
        )
    except ReviewError as e:  # no challenger, or no rows both classes to compare on
        raise dg.Failure(description=str(e), allow_retries=False) from e
    if outcome.unchanged:
        return dg.MaterializeResult(
            metadata={"decision": "no change", "reason": outcome.decision.reason}
        )
    apply_review(registry, outcome)
    sync_champion(registry, store)  # batch runs score drift with the lake's copy
    context.log.info(outcome.decision.reason)
    after = registry.champion()
    return dg.MaterializeResult(
        metadata={
            **outcome.metadata(),
            "champion_version_after": after.version if after else "none",
        }
    )


train_and_review_job = dg.define_asset_job(
    "train_and_review",
    selection=dg.AssetSelection.assets(challenger_model, champion_review),
    description="Train a challenger on the newest feature window, then review it against the "
    "champion (promote only when significantly better).",
)
