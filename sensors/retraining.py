import json

import dagster as dg

from fraud_assets.defs.jobs import ingest_batch_job
from fraud_assets.defs.keys import BATCH_ASSETS
from fraud_assets.defs.keys import DRIFT as DRIFT_KEY
from fraud_assets.defs.keys import FEATURES as FEATURES_KEY
from fraud_assets.defs.models import TRIGGER_TAG, train_and_review_job
from fraud_assets.defs.performance import PERFORMANCE
from resources.models import ModelStore, ModelTraining
from resources.storage import LakeStore

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dg.sensor(
    job=train_and_review_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "New feature batches, a batch whose drift share crosses the threshold, or the served "
        "champion's performance on labelled batches staying below its validation figure by "
        "more than the bound (champion_performance) → one training + champion–challenger "
        "review run. Never two at once, and not while batch runs are "
        "queued or running: triggers wait for the next tick. Waits until the lake holds a "
        "whole training window of features."
    ),
)
def retraining_sensor(
    context: dg.SensorEvaluationContext,
    lake: LakeStore,
    model_training: ModelTraining,
    models: ModelStore,
) -> dg.SensorResult | dg.SkipReason:
    from fraud_assets.lake import FEATURES

    _sync_champion(context, lake, models)
    # Cursor: storage id of the newest materialization already acted on, per watched asset.
    cursor = {"features": 0, "drift": 0, "performance": 0, **json.loads(context.cursor or "{}")}
    features = _new(context, FEATURES_KEY, cursor["features"])
    drifts = _new(context, DRIFT_KEY, cursor["drift"])
    performance = _new(context, PERFORMANCE, cursor["performance"])
    if not features and not drifts and not performance:
        return dg.SkipReason(
            "No new feature batch, drift report or champion performance since the last request."
        )

    running = context.instance.get_run_ids(
        dg.RunsFilter(job_name=train_and_review_job.name, statuses=IN_PROGRESS),
        limit=1,
    )
    if running:  # the cursor stays put: these triggers start the next run
        return dg.SkipReason(
            f"Training run {running[0]} is still in progress; the new triggers wait for it."
        )
    ingesting = _batch_run_in_progress(context.instance)
    if ingesting:  # a burst or backfill trains once, on all of it, when it is done
        return dg.SkipReason(
            f"Batch run {ingesting} is still in progress; training waits for the batches."
        )
    advanced = json.dumps(
        {
            "features": max([cursor["features"], *(r.storage_id for r in features)]),
            "drift": max([cursor["drift"], *(r.storage_id for r in drifts)]),
            "performance": max([cursor["performance"], *(r.storage_id for r in performance)]),
        }
    )
    need, have = model_training.days_needed(), len(lake.lake().dates(FEATURES))
    if have < need:
        return dg.SensorResult(
            skip_reason=f"{have} day(s) of features; training needs {need}. Waiting for more.",
            cursor=advanced,
        )

    reasons, run_key = [], None
    drifted = [
        (r.partition_key, share)
        for r in drifts
        if (share := _drift_share(r)) is not None and share >= model_training.retrain_drift_share
    ]
    if drifted:
        batch, share = drifted[-1]
        reasons.append(f"drift in batch {batch}: {share:.0%} of columns drifted")
        run_key = f"drift:{batch}"  # once per drifted batch, however often its report re-runs
    decay = _decay(context, model_training) if performance else None
    if decay is not None:
        reason, batch = decay
        reasons.append(reason)
        run_key = run_key or f"decay:{batch}"
    batches = sorted({r.partition_key for r in features if r.partition_key})
    if batches:
        reasons.append(f"new feature batches: {', '.join(batches)}")
        run_key = run_key or f"features-{max(r.storage_id for r in features)}"
    if not reasons:
        return dg.SensorResult(
            skip_reason="Drift reports below the threshold; champion performance within bounds.",
            cursor=advanced,
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=run_key, tags={TRIGGER_TAG: "; ".join(reasons)[:4000]})
        ],
        cursor=advanced,
    )


def _batch_run_in_progress(instance: dg.DagsterInstance) -> str | None:
    """A queued or running run that writes batch assets: the landing sensor's (`ingest_batch`)
    or a backfill's or a manual materialization's (an asset job selecting them). Training on a
    lake that such a run is rewriting would read some batches before it and some after."""
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS), limit=100):
        writes = set(run.asset_selection or ()) & set(BATCH_ASSETS)
        if run.job_name == ingest_batch_job.name or writes:
            return run.run_id
    return None


def _new(context: dg.SensorEvaluationContext, key: dg.AssetKey, after: int) -> list:
    return list(
        context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
            limit=10_000,
            ascending=True,
        ).records
    )


def _decay(
    context: dg.SensorEvaluationContext, model_training: ModelTraining
) -> tuple[str, str] | None:
    """(reason, newest batch) when the current champion's performance decayed for long enough.

    Reads the newest performance reports; only those of the champion judged most recently
    count (a new champion starts with a clean slate), in batch order.
    """
    from fraud_assets.modeling.performance import decay_reason

    rule = model_training.decay_rule()
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PERFORMANCE), limit=200, ascending=False
    ).records
    latest: dict[str, tuple[int, float, float]] = {}  # batch -> (version, value, reference)
    champion = None
    for record in records:  # newest first: the first report of a batch is its current one
        meta = record.asset_materialization.metadata
        version = meta.get("champion_version")
        if version is None or record.partition_key in latest:
            continue
        champion = champion if champion is not None else version.value
        value = meta.get(rule.metric)
        reference = meta.get(f"validation_{rule.metric}")
        if value is None or reference is None:
            continue
        latest[record.partition_key] = (version.value, float(value.value), float(reference.value))
    history = [
        (batch, value, reference)
        for batch, (version, value, reference) in sorted(latest.items())
        if version == champion
    ]
    reason = decay_reason(history, rule)
    return (reason, history[-1][0]) if reason else None


def _drift_share(record) -> float | None:  # noqa: ANN001 - an EventLogRecord
    value = record.asset_materialization.metadata.get("drift_share")
    return float(value.value) if value is not None else None


def _sync_champion(
    context: dg.SensorEvaluationContext, lake: LakeStore, models: ModelStore
) -> None:
    """Keep the lake's copy of the champion current, whoever moved the alias (UI, CLI, review)."""
    from fraud_assets.modeling.champion_snapshot import sync_champion

    try:
        sync_champion(models.registry(), lake.lake())
    except Exception as e:  # noqa: BLE001 - the registry being down must not stop retraining
        context.log.warning(f"Could not refresh the champion snapshot: {e}")
