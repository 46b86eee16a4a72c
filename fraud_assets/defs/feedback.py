"""feedback_features (per batch): the feedback features of a batch's clean transactions, for
training. Kept apart from transaction_features (whose columns every engine must produce alike):
computed from the scoring service's durable label log -- every record, corrections included,
with the moment it became known -- so each row sees only the labels known before it, exactly
as the scoring service computed them (features/feedback.py).
"""

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, MODELS_TEAM, tags
from fraud_assets.defs.keys import CLEAN
from fraud_assets.defs.online_state import LABELS
from fraud_assets.defs.partitions import batch_partitions
from resources.online import OnlineStore
from resources.storage import LakeStore

FEEDBACK = dg.AssetKey("feedback_features")


@dg.asset(
    key=FEEDBACK,
    deps=[CLEAN, LABELS],
    partitions_def=batch_partitions,
    group_name="features",
    kinds={"polars", "parquet"},
    owners=[MODELS_TEAM],
    tags=tags("features", "pseudonymised"),
    code_version=CODE_VERSIONS["feedback_features"],
    description="Confirmed-fraud counts per card and terminal (1 and 7 days) of the batch's "
    "transactions, from the labels the scoring service had recorded before each one (label "
    "log, known-at times); the training data joins them.",
)
def feedback_features(
    context: dg.AssetExecutionContext, lake: LakeStore, online_store: OnlineStore
) -> dg.MaterializeResult:
    from fraud_assets.features.feedback import (
        FEEDBACK_FEATURES,
        batch_feedback_features,
        label_events,
    )
    from fraud_assets.lake import CLEAN as CLEAN_TABLE
    from fraud_assets.lake import FEEDBACK as TABLE
    from fraud_assets.serving.labels import read_label_log

    store = lake.lake()
    events = label_events(read_label_log(online_store.label_log_dir))
    rows_total = 0
    with_any = dict.fromkeys(FEEDBACK_FEATURES, 0)
    for batch_id in context.partition_keys:  # one partition, or a ranged run's batches
        clean = store.read_batch(CLEAN_TABLE, batch_id)
        if clean.height == 0:
            raise dg.Failure(
                description=f"batch {batch_id} has no clean rows in the lake: ingest it first",
                allow_retries=False,
            )
        rows = batch_feedback_features(clean, events, online_store.origin)
        store.write_by_date(TABLE, batch_id, rows.sort("tx_datetime", "transaction_id"))
        rows_total += rows.height
        for name in FEEDBACK_FEATURES:
            with_any[name] += int((rows[name] > 0).sum())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows_total,
            "label_events": events.height,
            **{f"rows_with_{name}": n for name, n in with_any.items()},
        }
    )


feedback_features_job = dg.define_asset_job(
    "compute_feedback_features",
    selection=dg.AssetSelection.assets(FEEDBACK),
    partitions_def=batch_partitions,
    description="The feedback features of a batch (or a range), for training.",
)
