"""The landing sensor: new and re-landed batches, and the batches that depend on them, as runs."""

from __future__ import annotations

import dagster as dg

from fraud_assets.defs.ingest import REASON_TAG
from fraud_assets.defs.jobs import ingest_batch_job
from fraud_assets.defs.keys import DRIFT, FEATURES, RAW
from fraud_assets.defs.partitions import BATCHES, batch_partitions
from fraud_assets.defs.pools import ensure_pool_limits
from fraud_assets.settings import batch_settings
from resources.storage import LakeStore, LandingZone

# Dagster's tags for a run over a range of partitions (start and end keys, inclusive).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=batch_settings().landing_sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Lists the landing zone; registers each complete batch (marker present) as a partition "
        "and requests runs for new deliveries: one run for a single batch, ranged runs (at most "
        "FRAUD_BATCHES_PER_RUN batches, in time order) for a burst. When no ingest run is "
        "pending it also re-requests batches refused for missing history once that history has "
        "landed, and refreshes features that read a batch which has changed since. The "
        "`fraud/reason` tag of each run says why it was requested."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZone, lake: LakeStore
) -> dg.SensorResult | dg.SkipReason:
    from fraud_assets.batch.requests import DeliveryCursor, plan_runs
    from fraud_assets.rawdata.landing import batch_fingerprint

    ensure_pool_limits(context.instance)  # before the first batch runs are queued
    listing = landing_zone.listing()
    cursor = DeliveryCursor.from_json(context.cursor)
    markers = {b.batch_id: landing_zone.marker(b.batch_id) for b in listing.complete}
    arrivals = cursor.arrivals(
        (b.batch_id, batch_fingerprint(b, markers[b.batch_id])) for b in listing.complete
    )
    # A batch this cursor sees for the first time may have been ingested already (by a run from
    # the UI, an in-process tick, or before the cursor was reset): not again for the same bytes.
    ingested = _ingested_digests(context.instance, [d.batch_id for d in arrivals if d.number == 1])
    arrivals = [
        d
        for d in arrivals
        if d.number > 1
        or ingested.get(d.batch_id) is None
        or ingested[d.batch_id] != _marker_digest(markers[d.batch_id])
    ]
    known = list(context.instance.get_dynamic_partitions(BATCHES))
    new_keys = sorted({d.batch_id for d in arrivals} - set(known))
    order = known + new_keys
    limit = batch_settings().batches_per_run
    planned = plan_runs({d.batch_id: (d.key, d.reason) for d in arrivals}, order, limit, "ingest")
    requests = [_request(run, None) for run in planned]

    if listing.incomplete:
        waiting = ", ".join(b.name for b in listing.incomplete)
        context.log.info(f"Waiting for completion markers: {waiting}")
    if listing.ignored:
        context.log.info(f"Not batch files, ignored: {', '.join(listing.ignored)}")
    if not requests and not _ingest_pending(context.instance):
        requests = [_request(run, [FEATURES, DRIFT]) for run in _dependents(lake, order, limit)]
    if not requests:
        return dg.SensorResult(
            skip_reason=f"No new complete batch in {landing_zone.url} "
            f"({len(listing.complete)} known, {len(listing.incomplete)} waiting for a marker)",
            cursor=cursor.to_json(),
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)]
        if new_keys
        else [],
        cursor=cursor.to_json(),
    )


def _request(run, assets: list[dg.AssetKey] | None) -> dg.RunRequest:  # noqa: ANN001 - PlannedRun
    tags = {REASON_TAG: run.reason}
    if len(run.batch_ids) == 1:
        return dg.RunRequest(
            run_key=run.run_key,
            partition_key=run.batch_ids[0],
            tags=tags,
            asset_selection=assets,
        )
    tags |= {RANGE_START_TAG: run.batch_ids[0], RANGE_END_TAG: run.batch_ids[-1]}
    return dg.RunRequest(run_key=run.run_key, tags=tags, asset_selection=assets)


def _marker_digest(marker: bytes | None) -> str | None:
    from fraud_assets.rawdata.format import BatchMarker

    parsed = BatchMarker.from_json(marker) if marker else None
    return parsed.sha256 if parsed is not None else None


def _ingested_digests(instance: dg.DagsterInstance, batch_ids: list[str]) -> dict[str, str]:
    """SHA-256 of the file each batch's latest raw_transactions materialization read."""
    if not batch_ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW, asset_partitions=batch_ids), limit=len(batch_ids) * 8
    ).records
    out: dict[str, str] = {}
    for record in records:  # newest first
        partition = record.partition_key
        digest = record.asset_materialization.metadata.get("sha256")
        if partition is not None and partition not in out and digest is not None:
            out[partition] = str(digest.value)
    return out


def _ingest_pending(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_run_ids(
        dg.RunsFilter(job_name=ingest_batch_job.name, statuses=ACTIVE), limit=1
    )
    return bool(runs)


def _dependents(lake: LakeStore, order: list[str], limit: int) -> list:
    """Refused batches whose history has landed, and stale features, as planned runs."""
    from fraud_assets.batch.dependents import history_retries, stale_features
    from fraud_assets.batch.requests import plan_runs
    from fraud_assets.batch.state import lineages, refusals

    store = lake.lake()
    known = store.coverage()
    reruns = {r.batch_id: (r.key, r.reason) for r in stale_features(known, lineages(store))}
    reruns |= {r.batch_id: (r.key, r.reason) for r in history_retries(known, refusals(store))}
    return plan_runs(reruns, order, limit, "dependents")
