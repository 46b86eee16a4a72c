"""Training and champion–challenger review as assets: thin wrappers around fraud_assets.modeling."""

import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from fraud_assets.defs.keys import FEATURES as FEATURES_KEY
from resources.models import ModelStore, ModelTraining
from resources.storage import LakeStore

if TYPE_CHECKING:  # CatBoost, MLflow and Polars load in the run that trains, not at import
    import polars as pl

    from fraud_assets.lake import Lake
    from fraud_assets.modeling.registry import ModelRegistry

TRIGGER_TAG = "fraud/trigger"  # why a training run was requested (new batches, drift)


def latest_features(lake: "Lake", days: int) -> "tuple[pl.DataFrame, dt.date]":
    """The feature rows of the newest `days` dates, and the newest date. Labels the scoring
    service received (`fraud_labels`) replace the batch files' `tx_fraud` where they exist."""
    from fraud_assets.lake import FEATURES
    from fraud_assets.modeling.training import DAY
    from fraud_assets.online_state.publish import apply_labels, labels_table

    dates = lake.dates(FEATURES)
    if not dates:
        raise dg.Failure("No feature batches in the lake yet: ingest some batches first.")
    data_end = dates[-1]
    first = data_end - (days - 1) * DAY
    features = lake.read_by_date(FEATURES, first, data_end)
    return apply_labels(features, labels_table(lake, first, data_end)), data_end


@dg.asset(
    deps=[dg.AssetDep(FEATURES_KEY, partition_mapping=dg.AllPartitionMapping())],
    group_name="models",
    kinds={"catboost", "mlflow"},
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
    from fraud_assets.modeling.review import FIRST_MODEL, decide, review_bounds, review_slice

    registry = models.registry()
    challenger = registry.challenger()
    if challenger is None:
        raise dg.Failure("No model version has the alias `challenger`: train one first.")
    champion = registry.champion()
    if champion is not None and champion.version == challenger.version:
        return dg.MaterializeResult(
            metadata={"decision": "no change", "reason": "the challenger is the champion already"}
        )
    review = model_training.review()
    if champion is None:
        decision, rows = FIRST_MODEL, None
    else:
        days = review.review_days + review.delay_days
        features, data_end = latest_features(lake.lake(), days)
        try:
            rows = review_slice(features, data_end, review)
        except ValueError as e:
            raise dg.Failure(description=str(e), allow_retries=False) from e
        decision = decide(
            rows["tx_fraud"].to_numpy(),
            _scores(registry, challenger.version, rows),
            _scores(registry, champion.version, rows),
            review,
        )
    if decision.promote:
        registry.promote(challenger.version, decision.reason)
    sync_champion(registry, lake.lake())  # batch runs score drift with the lake's copy
    result = decision.comparison
    registry.tag(
        challenger.version,
        {
            "review_decision": "promoted" if decision.promote else "not promoted",
            "review_reason": decision.reason,
            "review_champion_version": str(champion.version) if champion else "none",
            **(
                {
                    "review_metric": result.metric,
                    "review_champion_score": f"{result.champion:.6f}",
                    "review_challenger_score": f"{result.challenger:.6f}",
                    "review_interval": f"[{result.low:.6f}, {result.high:.6f}]",
                }
                if result
                else {}
            ),
        },
    )
    context.log.info(decision.reason)
    metadata: dict[str, object] = {
        "decision": "promoted" if decision.promote else "not promoted",
        "reason": decision.reason,
        "challenger_version": challenger.version,
        "champion_version_before": champion.version if champion else "none",
        "champion_version_after": registry.champion().version,  # type: ignore[union-attr]
    }
    if result is not None and rows is not None:
        first, last = review_bounds(data_end, review)
        metadata |= {
            "metric": result.metric,
            "champion_score": result.champion,
            "challenger_score": result.challenger,
            "difference": result.difference,
            "interval_low": result.low,
            "interval_high": result.high,
            "confidence": result.confidence,
            "n_resamples": result.n_resamples,
            "review_window": f"{first} .. {last}",
            "dagster/row_count": rows.height,
        }
    return dg.MaterializeResult(metadata=metadata)


def _scores(registry: "ModelRegistry", version: int, rows: "pl.DataFrame"):  # noqa: ANN202
    from fraud_assets.modeling.training import score

    model, _ = registry.load(version)
    return score(model, rows)


train_and_review_job = dg.define_asset_job(
    "train_and_review",
    selection=dg.AssetSelection.assets(challenger_model, champion_review),
    description="Train a challenger on the newest feature window, then review it against the "
    "champion (promote only when significantly better).",
)
