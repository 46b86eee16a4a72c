"""The batch assets, from a landed file to its drift verdict, as one step over a range of batches.

One multi-asset, so that a backfill or a landing burst runs as a few ranged runs instead of one
run (a fresh process) per batch: `fraud_assets.batch.ranges` does the work, batch by batch in time
order, and this step turns each batch's outcome into its own materializations and check results
(logged as each batch finishes). A batch that fails is named in the step's failure; the others
keep their outputs, and the failed one can be re-run alone.

Assets: raw_transactions -> clean_transactions + quarantined_transactions -> transaction_features
-> drift_report. Each can be materialized on its own (the step then runs only that part).
"""

import datetime as dt
import functools
import warnings

import dagster as dg

from fraud_assets.defs.catalog import CODE_VERSIONS, DATA_PLATFORM, MODELS_TEAM, tags
from fraud_assets.defs.event_writer import EventWriter
from fraud_assets.defs.keys import CHAMPION_REVIEW, CLEAN, DRIFT, FEATURES, QUARANTINE, RAW
from fraud_assets.defs.partitions import batch_partitions
from fraud_assets.defs.pools import BATCH_POOL
from fraud_assets.defs.registry import TERMINAL_REGISTRY
from fraud_assets.settings import batch_settings, validation_settings
from resources.models import ModelStore
from resources.processing import FeatureEngine, PseudonymKey
from resources.storage import LakeStore, LandingZone

REASON_TAG = "fraud/reason"  # why a run was requested (sensor runs carry it)

_LOOKBACK_NOTE = "computed with up to 67 days of earlier clean history; refuses when it is missing"


def _spec(
    key: dg.AssetKey,
    deps: list[dg.AssetKey],
    group: str,
    kinds: set[str],
    text: str,
    asset_tags: dict[str, str],
    owner: str = DATA_PLATFORM,
):
    return dg.AssetSpec(
        key,
        deps=deps,
        partitions_def=batch_partitions,
        group_name=group,
        kinds=kinds,
        description=text,
        skippable=True,  # materializations are logged per batch, not emitted for the range
        owners=[owner],
        tags=asset_tags,
        code_version=CODE_VERSIONS[key.to_user_string()],
    )


def _check(name: str, asset: dg.AssetKey, text: str, blocking: bool = False):
    # Partitioned checks (a result per batch) are a preview feature of Dagster 1.13: the tests
    # hold what the platform relies on (tests/test_ranges.py).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, description=text, blocking=blocking, partitions_def=batch_partitions
        )


class IngestSettings(dg.Config):
    # Without a materialized terminal_registry, terminal ids above this are quarantined.
    max_terminal_id: int = validation_settings().max_terminal_id
    max_amount: float = validation_settings().max_amount  # larger amounts are quarantined
    origin_date: str | None = None  # YYYY-MM-DD; default: each batch's marker, else inferred
    share_threshold: float = 0.5  # drift verdict: drifted when this share of columns drifts
    reference_batch: str | None = None  # drift reference; default: the champion's training window
    reference_days: int = 28  # without a champion nor a reference batch: the days before


@dg.multi_asset(
    name="ingest_batches",
    specs=[
        _spec(
            RAW,
            [],
            "ingestion",
            {"file"},
            "A raw transaction batch as it landed: header verified, rows and bytes counted, "
            "checksum recorded and compared with the batch's completion marker.",
            tags("raw", "raw-ids"),
        ),
        _spec(
            CLEAN,
            [RAW, TERMINAL_REGISTRY],
            "cleaning",
            {"polars", "spark", "parquet"},
            "Repaired, de-duplicated, pseudonymised transactions that keep to the data contract "
            "(ids, amounts, the batch's days, registered terminals, ids no other batch holds); "
            "Parquet by date.",
            tags("clean", "pseudonymised"),
        ),
        _spec(
            QUARANTINE,
            [RAW, TERMINAL_REGISTRY],
            "cleaning",
            {"polars", "spark", "parquet"},
            "Rows that could not be trusted: line number and reason (their raw lines, which hold "
            "real ids, in the restricted zone of the lake).",
            tags("clean", "pseudonymised"),
        ),
        _spec(
            FEATURES,
            [CLEAN],
            "features",
            {"polars", "spark", "parquet"},
            f"The feature set of docs/features.md for the batch's transactions, {_LOOKBACK_NOTE}.",
            tags("features", "pseudonymised"),
        ),
        _spec(
            DRIFT,
            # The champion's scores and training window are part of the report: a new champion
            # changes what a batch's drift report would say.
            [FEATURES, CHAMPION_REVIEW],
            "monitoring",
            {"evidently", "html"},
            "Drift of the batch's features, champion scores and fraud share against a reference "
            "(the champion's training window, or a configured batch): per-column tests and "
            "verdict here; the full Evidently report behind the link, rendered on first view.",
            tags("monitoring", "aggregates"),
            owner=MODELS_TEAM,
        ),
    ],
    check_specs=[
        _check(
            "rows_conserved",
            CLEAN,
            "raw rows = clean + quarantined (cross-batch duplicate ids included) + dropped "
            "duplicates",
            blocking=True,
        ),
        _check(
            "clean_schema",
            CLEAN,
            "pandera CleanTransactions (ids >= 0, amounts within the maximum, timestamps in the "
            "batch's days); a failing table is not featurised",
            blocking=True,
        ),
        _check("quarantine_schema", QUARANTINE, "pandera QuarantinedTransactions"),
        _check(
            "feature_schema",
            FEATURES,
            "pandera TransactionFeatures; a failing table is not published online in the run",
            blocking=True,
        ),
        _check(
            "data_quality",
            DRIFT,
            "Missing values, out-of-range values and new terminals against the reference "
            "(warns, never blocks)",
        ),
    ],
    partitions_def=batch_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(batch_settings().batches_per_run),
    can_subset=True,
    pool=BATCH_POOL,
)
def ingest_batches(
    context: dg.AssetExecutionContext,
    config: IngestSettings,
    landing_zone: LandingZone,
    lake: LakeStore,
    pseudonym_key: PseudonymKey,
    feature_engine: FeatureEngine,
    models: ModelStore,
):
    from fraud_assets.batch.ranges import RangeConfig, Step, ingest_range
    from fraud_assets.cleaning.terminal_registry import read_registry
    from fraud_assets.defs.batch_events import events_for
    from fraud_assets.monitoring.reference import ReferencePolicy

    batches = list(context.partition_keys)
    selected = set(context.selected_asset_keys)
    steps = {
        step
        for step, keys in (
            (Step.RAW, {RAW}),
            (Step.CLEAN, {CLEAN, QUARANTINE}),
            (Step.FEATURES, {FEATURES}),
            (Step.DRIFT, {DRIFT}),
        )
        if keys & selected
    }
    store = lake.lake()
    registry = read_registry(store) if Step.CLEAN in steps else None
    if Step.CLEAN in steps:
        context.log.info(
            registry.describe()
            if registry is not None
            else "No terminal_registry materialized: terminal ids above "
            f"{config.max_terminal_id:,} are quarantined, all others accepted."
        )
    settings = RangeConfig(
        max_terminal_id=config.max_terminal_id,
        max_amount=config.max_amount,
        registry=registry,
        origin_date=dt.date.fromisoformat(config.origin_date) if config.origin_date else None,
        engine=feature_engine.engine,
        spark=feature_engine.spark_session(),
        reference=ReferencePolicy(config.reference_batch, config.reference_days),
        share_threshold=config.share_threshold,
    )
    known = store.coverage()

    def rows(batch_id: str) -> int:
        if steps & {Step.RAW, Step.CLEAN}:
            return landing_zone.size(batch_id) // 60  # ≈ bytes per raw line
        return known[batch_id].rows if batch_id in known else 0

    def champion():  # noqa: ANN202 - ChampionSnapshot | None
        from fraud_assets.modeling.champion_snapshot import read_champion, sync_champion

        synced, snapshot = read_champion(store)
        return snapshot if synced else sync_champion(models.registry(), store)

    checks = set(context.selected_asset_check_keys)
    done = 0
    # Every log line is a row in the event log: a failed batch gets its own line, the others a
    # progress line every 5 % of the range (each batch's events name it anyway).
    every = max(1, len(batches) // 20)

    def log_outcome(outcome, done: int) -> None:  # noqa: ANN001 - a BatchOutcome
        for event in events_for(outcome, selected, checks, landing_zone.display_path):
            context.log_event(event)
        if not outcome.ok:
            context.log.warning(
                f"[{done}/{len(batches)}] {outcome.batch_id}: FAILED at {outcome.failed_step}: "
                f"{outcome.error}"
            )
        elif done % every == 0 or done == len(batches):
            context.log.info(f"[{done}/{len(batches)}] batches done, the last {outcome.batch_id}")

    context.log.info(
        f"{len(batches)} batch(es) {batches[0]}..{batches[-1]}: "
        f"{', '.join(sorted(s.value for s in steps))}"
    )
    # The events go to the event log from a thread of their own while the next batches compute.
    with EventWriter() as write:

        def report(outcome) -> None:  # noqa: ANN001 - a BatchOutcome
            nonlocal done
            done += 1
            write(functools.partial(log_outcome, outcome, done))

        outcomes = ingest_range(
            batches,
            steps,
            landing_zone,
            store,
            pseudonym_key.pseudonymizer(),
            settings,
            champion=champion,
            row_estimate=rows,
            on_batch=report,
        )
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines = [f"{o.batch_id} ({o.failed_step}): {o.error}" for o in failed]
        raise dg.Failure(
            description=f"{len(failed)} of {len(outcomes)} batch(es) failed; the others "
            "were materialized:\n" + "\n".join(lines),
            metadata={"failed_batches": ", ".join(o.batch_id for o in failed)},
            allow_retries=False,
        )
    yield from ()  # no range-wide outputs: each batch's events were logged as it finished
