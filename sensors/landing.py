import json

import dagster as dg

from fraud_assets.defs.jobs import ingest_batch_job
from fraud_assets.landing import batch_fingerprint
from fraud_assets.partitions import BATCHES, batch_partitions
from resources.storage import LandingZone


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Lists the landing zone; registers each complete batch (marker present) as a partition "
        "and requests one ingest run per delivery. Batches without a marker are left alone."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZone
) -> dg.SensorResult | dg.SkipReason:
    listing = landing_zone.listing()
    # Cursor: batch id -> fingerprint of the delivery already requested. A re-landed batch with
    # new content gets a new fingerprint and so one new run; the same delivery never two.
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(BATCHES))

    new_keys: list[str] = []
    run_requests: list[dg.RunRequest] = []
    for batch in listing.complete:
        fingerprint = batch_fingerprint(batch, landing_zone.marker(batch.batch_id))
        if requested.get(batch.batch_id) == fingerprint:
            continue
        if batch.batch_id not in known:
            new_keys.append(batch.batch_id)
        run_requests.append(
            dg.RunRequest(
                partition_key=batch.batch_id,
                run_key=f"{batch.batch_id}:{fingerprint}",
                tags={"fraud/batch_fingerprint": fingerprint},
            )
        )
        requested[batch.batch_id] = fingerprint

    if listing.incomplete:
        waiting = ", ".join(b.name for b in listing.incomplete)
        context.log.info(f"Waiting for completion markers: {waiting}")
    if listing.ignored:
        context.log.info(f"Not batch files, ignored: {', '.join(listing.ignored)}")
    if not run_requests:
        return dg.SkipReason(
            f"No new complete batch in {landing_zone.url} "
            f"({len(listing.complete)} known, {len(listing.incomplete)} waiting for a marker)"
        )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)]
        if new_keys
        else [],
        cursor=json.dumps(requested, sort_keys=True),
    )
