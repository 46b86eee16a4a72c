import dagster as dg
import pandera.errors

from fraud_assets.defs.clean import CLEAN
from fraud_assets.features.spec import FEATURE_COLUMNS, LOOKBACK_DAYS
from fraud_assets.lake import MissingHistoryError
from fraud_assets.partitions import batch_partitions
from fraud_assets.pipeline import features_into_lake
from fraud_assets.schemas import TransactionFeatures
from resources.processing import FeatureEngine
from resources.storage import LakeStore


@dg.asset(
    partitions_def=batch_partitions,
    deps=[CLEAN],
    group_name="features",
    kinds={"polars", "spark", "parquet"},
    description=(
        f"Baseline features of DESIGN.md §3.4 for the batch's transactions, computed with up to "
        f"{LOOKBACK_DAYS} days of earlier clean history; refuses when that history is missing."
    ),
    check_specs=[dg.AssetCheckSpec("feature_schema", asset="transaction_features")],
)
def transaction_features(
    context: dg.AssetExecutionContext, lake: LakeStore, feature_engine: FeatureEngine
):
    batch_id = context.partition_key
    try:
        features = features_into_lake(
            lake.lake(), batch_id, feature_engine.engine, feature_engine.spark_session()
        )
    except MissingHistoryError as e:
        raise dg.Failure(description=str(e), allow_retries=False) from e
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": features.height,
            "engine": feature_engine.engine,
            "features": ", ".join(FEATURE_COLUMNS),
            "fraud_share": float(features["tx_fraud"].cast(float).mean() or 0.0),
        }
    )
    try:
        TransactionFeatures.validate(features, lazy=True)
        yield dg.AssetCheckResult(check_name="feature_schema", passed=True)
    except pandera.errors.SchemaErrors as e:
        yield dg.AssetCheckResult(
            check_name="feature_schema",
            passed=False,
            metadata={"failures": dg.MetadataValue.md(f"```\n{str(e)[:4000]}\n```")},
        )
