"""Per-batch drift report and data-quality check: thin wrappers around fraud_assets.monitoring."""

import datetime as dt

import dagster as dg
import polars as pl

from fraud_assets.defs.features import transaction_features
from fraud_assets.features.spec import CALENDAR_FEATURES, FEATURE_COLUMNS
from fraud_assets.lake import FEATURES, Lake
from fraud_assets.modeling.training import score
from fraud_assets.monitoring.drift import DEFAULT_DRIFT_SHARE, drift_report
from fraud_assets.monitoring.quality import data_quality
from fraud_assets.monitoring.report_server import report_url
from fraud_assets.partitions import batch_partitions
from resources.models import ModelStore
from resources.storage import LakeStore

DRIFT = "drift"
# Calendar flags follow from the timestamp: a weekend batch after weekday-only references is not
# a quality problem, so they are left out.
QUALITY_COLUMNS = [c for c in FEATURE_COLUMNS if c not in CALENDAR_FEATURES] + [
    "tx_amount",
    "terminal_id",
]


class DriftSettings(dg.Config):
    share_threshold: float = DEFAULT_DRIFT_SHARE  # verdict: drifted when this share of columns is
    reference_batch: str | None = None  # default: the champion's training window
    reference_days: int = 28  # without a champion nor a reference batch: the days before the batch


@dg.asset(
    name="drift_report",
    partitions_def=batch_partitions,
    deps=[transaction_features],
    group_name="monitoring",
    kinds={"evidently", "html"},
    description=(
        "Evidently drift report of the batch's features, champion scores and fraud share against "
        "a reference (the champion's training window, or a configured batch). Full HTML in the "
        "lake, served by `fraud reports`; a Markdown summary here."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "data_quality",
            asset="drift_report",
            description="Missing values, out-of-range values and new terminals against the "
            "reference (warns, never blocks)",
        )
    ],
)
def drift_report_asset(
    context: dg.AssetExecutionContext, config: DriftSettings, lake: LakeStore, models: ModelStore
):
    batch_id = context.partition_key
    store = lake.lake()
    current = store.read_batch(FEATURES, batch_id)
    if current.height == 0:
        raise dg.Failure(f"Batch {batch_id} has no features yet: materialize them first.")
    reference, described, model = _reference(store, batch_id, current, config, models)
    if reference.height == 0:  # the very first batches: nothing to compare with yet
        yield dg.MaterializeResult(
            metadata={"verdict": "no reference yet", "reference": f"{described}: no rows"}
        )
        yield dg.AssetCheckResult(
            check_name="data_quality", passed=True, metadata={"issues": "no reference yet"}
        )
        return
    if model is not None:
        current = current.with_columns(score=pl.Series(score(model, current)))
        reference = reference.with_columns(score=pl.Series(score(model, reference)))
    result = drift_report(reference, current, share_threshold=config.share_threshold)
    store.write_report(DRIFT, batch_id, result.html)
    url = report_url(DRIFT, batch_id)
    verdict = "drifted" if result.drifted else "not drifted"
    context.log.info(
        f"{batch_id}: {verdict}, {result.drift_share:.0%} of columns drifted "
        f"({', '.join(result.drifted_columns()) or 'none'}); report: {url}"
    )
    yield dg.MaterializeResult(
        metadata={
            "verdict": verdict,
            "drifted": result.drifted,
            "drift_share": result.drift_share,
            "share_threshold": config.share_threshold,
            "drifted_columns": ", ".join(result.drifted_columns()) or "none",
            "reference": described,
            "drift_table": dg.MetadataValue.md(result.to_markdown()),
            "report": dg.MetadataValue.url(url),
            "dagster/row_count": current.height,
        }
    )
    quality = data_quality(reference, current, QUALITY_COLUMNS)
    yield dg.AssetCheckResult(
        check_name="data_quality",
        passed=quality.ok,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "issues": "; ".join(quality.issues()) or "none",
            "summary": dg.MetadataValue.md(quality.to_markdown()),
        },
    )


def _reference(
    lake: Lake, batch_id: str, current: pl.DataFrame, config: DriftSettings, models: ModelStore
) -> tuple[pl.DataFrame, str, object]:
    """(reference rows, what they are, the champion's model or None)."""
    registry = models.registry()
    champion = registry.champion()
    model = registry.load(champion.version)[0] if champion else None
    if config.reference_batch:
        reference = lake.read_batch(FEATURES, config.reference_batch)
        return reference, f"batch {config.reference_batch}", model
    if champion is not None and "train_window" in champion.tags:
        first, last = (dt.date.fromisoformat(d) for d in champion.tags["train_window"].split(".."))
        what = f"champion v{champion.version}'s training window {first}..{last}"
        return lake.read_by_date(FEATURES, first, last), what, model
    first_day = current["tx_datetime"].min().date()
    first = first_day - dt.timedelta(days=config.reference_days)
    last = first_day - dt.timedelta(days=1)
    what = f"the {config.reference_days} days before the batch"
    return lake.read_by_date(FEATURES, first, last), what, model
