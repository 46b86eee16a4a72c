"""The scoring service's side of the lake: the online feature state and the service's labels.

online_feature_state (per batch, after transaction_features): publishes the batch's
transactions -- what the online store needs for each card's last 30 days and each terminal's
labelled last 37 days -- to the configured store (Redis in deployment; with the in-process store
the services load the same rows from the lake at start). Idempotent by transaction id. Its
check `online_offline_consistency` replays the newest batch of the run through the online
computation, from a copy of the state before it, and compares every feature with the batch
features: ERROR below a 100 % match rate, the worst columns in the metadata.

fraud_labels: the service's durable label log (/v1/feedback) as a lake table.
"""

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, DATA_PLATFORM, tags
from fraud_assets.defs.jobs import ingest_batch_job
from fraud_assets.defs.keys import FEATURES
from fraud_assets.defs.partitions import batch_partitions
from fraud_assets.defs.pools import ONLINE_STATE_POOL
from fraud_assets.settings import batch_settings
from resources.online import OnlineStore
from resources.storage import LakeStore

ONLINE_STATE = dg.AssetKey("online_feature_state")
LABELS = dg.AssetKey("fraud_labels")
CONSISTENCY = "online_offline_consistency"
# Its own pool (one publish at a time): a publish only reads committed lake data, so it need
# not wait for batch runs, nor hold a backfill queued behind it in the batch pool.


def _consistency_spec() -> dg.AssetCheckSpec:
    # One result per run, not per batch: it speaks of the state after the run's newest batch.
    return dg.AssetCheckSpec(
        CONSISTENCY,
        asset=ONLINE_STATE,
        description="Replays the newest batch of the run through the online feature computation "
        "(from a copy of the state before it) and compares every feature with the batch "
        "features: match rate and worst columns; ERROR below 100 %.",
    )


@dg.multi_asset(
    name="publish_online_state",
    specs=[
        dg.AssetSpec(
            ONLINE_STATE,
            deps=[FEATURES, LABELS],
            partitions_def=batch_partitions,
            group_name="serving",
            kinds={"redis"},
            description="What the scoring service's online store needs from each batch (each "
            "card's last 30 days, each terminal's labelled last 37 days), published to the "
            "configured store; idempotent by transaction id.",
            skippable=True,
            owners=[DATA_PLATFORM],
            tags=tags("serving", "pseudonymised"),
            code_version=CODE_VERSIONS["online_feature_state"],
        )
    ],
    check_specs=[_consistency_spec()],
    partitions_def=batch_partitions,
    # As the ingest step's: the two share ranged runs (one run per FRAUD_BATCHES_PER_RUN).
    backfill_policy=dg.BackfillPolicy.multi_run(batch_settings().batches_per_run),
    can_subset=True,
    pool=ONLINE_STATE_POOL,
)
def publish_online_state(
    context: dg.AssetExecutionContext, lake: LakeStore, online_store: OnlineStore
):
    from fraud_assets.online_state.consistency import check_batch
    from fraud_assets.online_state.publish import publish_batches

    batches = sorted(context.partition_keys)
    store = lake.lake()
    target = online_store.store()
    if target is not None:
        published = publish_batches(target, store, batches, online_store.origin)
        note = f"published to Redis (prefix {online_store.prefix})"
        rows, added = published.rows, published.added
    else:
        known = store.coverage()
        rows = sum(known[b].rows for b in batches if b in known)
        added = 0
        note = "in-process stores load these rows from the lake at start (warm start)"
    context.log.info(f"{len(batches)} batch(es), {rows:,} transactions: {note}")
    if ONLINE_STATE in context.selected_asset_keys:
        for batch in batches:
            context.log_event(
                dg.AssetMaterialization(
                    ONLINE_STATE,
                    partition=batch,
                    metadata={
                        "store": online_store.kind,
                        "range": f"{batches[0]}..{batches[-1]}",
                        "range_rows": rows,
                        "new_to_store": added,
                    },
                )
            )
    check_key = dg.AssetCheckKey(ONLINE_STATE, CONSISTENCY)
    if check_key in context.selected_asset_check_keys:
        newest = batches[-1]
        result = check_batch(store, newest)
        worst = result.worst_columns[:5]
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=ONLINE_STATE,
                check_name=CONSISTENCY,
                passed=result.rows > 0 and result.match_rate == 1.0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "batch": newest,
                    "match_rate": dg.MetadataValue.float(result.match_rate),
                    "rows_compared": result.rows,
                    "rows_matching": result.matching_rows,
                    "worst_columns": dg.MetadataValue.md(
                        "\n".join(f"- `{c}`: {n} rows differ" for c, n in worst)
                        or "every column matches"
                    ),
                    "examples": dg.MetadataValue.json(result.examples),
                },
            )
        )
    yield from ()


@dg.asset(
    key=LABELS,
    group_name="serving",
    kinds={"polars", "parquet"},
    description="Every label the scoring service accepted (/v1/feedback), from its durable "
    "label log; the newest label per transaction. Read by online_feature_state (terminal risk) "
    "next to the labels in the batch files.",
    owners=[DATA_PLATFORM],
    tags=tags("serving", "pseudonymised"),
    code_version=CODE_VERSIONS["fraud_labels"],
)
def fraud_labels(lake: LakeStore, online_store: OnlineStore) -> dg.MaterializeResult:
    from fraud_assets.online_state.publish import LABEL_BATCH
    from fraud_assets.online_state.publish import LABELS as TABLE
    from fraud_assets.serving.labels import latest_labels, read_label_log

    log = read_label_log(online_store.label_log_dir)
    labels = latest_labels(log)
    if labels.height:
        lake.lake().write_by_date(TABLE, LABEL_BATCH, labels.sort("tx_datetime"))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": labels.height,
            "log_records": log.height,
            "frauds": int(labels["fraud"].sum()) if labels.height else 0,
            "label_log": online_store.label_log_dir,
        }
    )


# A job of its own: in the ingest run this step would be skipped, because the ingest step logs
# its materializations per batch instead of yielding outputs.
publish_online_state_job = dg.define_asset_job(
    "online_state",
    selection=dg.AssetSelection.assets(ONLINE_STATE),
    partitions_def=batch_partitions,
    description="Publish the online feature state of a batch or a range of batches (and check "
    "online/offline consistency on the newest).",
)

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def online_state_request(tags: dict[str, str], run_id: str) -> dg.RunRequest | None:
    """The publish run for the batches an ingest run covered (same partition or range)."""
    key = f"online-state:{run_id}"
    if PARTITION_TAG in tags:
        return dg.RunRequest(run_key=key, partition_key=tags[PARTITION_TAG])
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        keep = (RANGE_START_TAG, RANGE_END_TAG)
        return dg.RunRequest(run_key=key, tags={k: tags[k] for k in keep})
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_batch_job],
    request_job=publish_online_state_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="After each successful ingest run, publishes the online feature state of the "
    "same batches (one run for the same range).",
)
def online_state_sensor(context: dg.RunStatusSensorContext):
    request = online_state_request(dict(context.dagster_run.tags), context.dagster_run.run_id)
    if request is None:
        return dg.SkipReason("the ingest run names no batch partition")
    return request
