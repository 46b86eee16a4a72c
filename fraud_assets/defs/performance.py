"""Performance of the served champion per batch, once the batch's labels are known."""

from typing import TYPE_CHECKING

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, MODELS_TEAM, tags
from fraud_assets.defs.keys import FEATURES as FEATURES_KEY
from fraud_assets.defs.partitions import batch_partitions
from resources.models import ModelStore, ModelTraining
from resources.storage import LakeStore

if TYPE_CHECKING:
    from fraud_assets.modeling.registry import ModelVersionInfo

PERFORMANCE = dg.AssetKey("champion_performance")


@dg.asset(
    key=PERFORMANCE,
    deps=[FEATURES_KEY, dg.AssetKey("fraud_labels")],
    partitions_def=batch_partitions,
    group_name="monitoring",
    kinds={"catboost", "mlflow"},
    owners=[MODELS_TEAM],
    tags=tags("monitoring", "none"),
    code_version=CODE_VERSIONS["champion_performance"],
    description=(
        "What the served champion achieved on this batch once its labels are known (the batch "
        "is older than the label delay; investigators' labels replace the batch's own): AUC "
        "ROC, average precision, card precision@100 (handbook definition), recall, FPR and "
        "precision at the served threshold, alert rate, beside the champion's validation "
        "figures. A sustained fall triggers retraining (retraining_sensor)."
    ),
)
def champion_performance(
    context: dg.AssetExecutionContext,
    lake: LakeStore,
    models: ModelStore,
    model_training: ModelTraining,
) -> dg.MaterializeResult:
    import datetime as dt

    from fraud_assets.lake import FEATURES
    from fraud_assets.modeling.performance import batch_performance, labels_known
    from fraud_assets.modeling.training import score
    from fraud_assets.online_state.publish import apply_labels, labels_table

    batch = context.partition_key
    the_lake = lake.lake()
    rows = the_lake.read_batch(FEATURES, batch)
    if rows.height == 0:
        raise dg.Failure(f"Batch {batch} has no feature rows: compute its features first.")
    days = rows["tx_datetime"].dt.date()
    first, last = days.min(), days.max()
    data_end = the_lake.dates(FEATURES)[-1]
    delay = model_training.delay_days
    if not labels_known(last, data_end, delay):
        raise dg.Failure(
            f"The labels of batch {batch} (days {first}..{last}) are not all known yet: the "
            f"newest data is {data_end} and labels take {delay} days. Try again after "
            f"{last + dt.timedelta(days=delay)}.",
            allow_retries=False,
        )
    rows = apply_labels(rows, labels_table(the_lake, first, last))
    registry = models.registry()
    champion = registry.champion()
    if champion is None:
        raise dg.Failure("No champion yet: nothing is served, so there is nothing to judge.")
    model, threshold = registry.load(champion.version)
    metrics = batch_performance(rows, score(model, rows), threshold)
    reference = _validation(registry, champion)
    context.log.info(
        f"champion v{champion.version} on {batch}: AP {metrics['average_precision']:.4f} "
        f"(validation {reference.get('average_precision', float('nan')):.4f})"
    )
    return dg.MaterializeResult(
        metadata={
            "champion_version": champion.version,
            "batch_days": f"{first} .. {last}",
            **{k: float(v) for k, v in metrics.items()},
            **{f"validation_{k}": float(v) for k, v in reference.items()},
            "card_precision": "handbook definition (cards detected earlier dropped)",
        }
    )


def _validation(registry, champion: "ModelVersionInfo") -> dict[str, float]:  # noqa: ANN001
    """The champion's validation metrics as logged with it (valid_* run metrics)."""
    if not champion.run_id:
        return {}
    run = registry.client.get_run(champion.run_id)
    return {
        k.removeprefix("valid_"): float(v)
        for k, v in run.data.metrics.items()
        if k.startswith("valid_")
        and k.removeprefix("valid_")
        in ("auc_roc", "average_precision", "card_precision_at_100", "recall", "fpr")
    }
