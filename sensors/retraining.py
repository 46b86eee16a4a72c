import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from fraud_assets.defs.models import TRIGGER_TAG, train_and_review_job
from fraud_assets.lake import FEATURES
from resources.models import ModelTraining
from resources.storage import LakeStore

FEATURES_KEY = dg.AssetKey("transaction_features")


@dg.sensor(
    job=train_and_review_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "New feature batches → one training + champion–challenger review run. Never two at once: "
        "while one runs, new batches wait for the next tick. Waits until the lake holds enough "
        "days of features for the default training window."
    ),
)
def retraining_sensor(
    context: dg.SensorEvaluationContext, lake: LakeStore, model_training: ModelTraining
) -> dg.SensorResult | dg.SkipReason:
    # Cursor: storage id of the newest feature materialization already acted on.
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FEATURES_KEY, after_storage_id=after),
        limit=10_000,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("No new feature batch since the last training request.")
    batches = sorted({r.partition_key for r in records if r.partition_key})
    newest = max(r.storage_id for r in records)

    running = context.instance.get_run_ids(
        dg.RunsFilter(job_name=train_and_review_job.name, statuses=IN_PROGRESS_RUN_STATUSES),
        limit=1,
    )
    if running:  # the cursor stays put: these batches trigger the next run
        return dg.SkipReason(
            f"Training run {running[0]} is still in progress; {len(batches)} new feature "
            "batch(es) will trigger the next one."
        )
    need = model_training.days_needed()
    have = len(lake.lake().dates(FEATURES))
    if have < need:
        return dg.SensorResult(
            skip_reason=f"{have} day(s) of features; training needs {need}. Waiting for more.",
            cursor=str(newest),
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"features-{newest}",
                tags={TRIGGER_TAG: f"new feature batches: {', '.join(batches)}"[:4000]},
            )
        ],
        cursor=str(newest),
    )
