import datetime as dt

import dagster as dg
import pandera.errors

from fraud_assets.cleaning import CleaningConfig, CleanResult
from fraud_assets.defs.raw import raw_transactions
from fraud_assets.ingestion import RawBatchError
from fraud_assets.partitions import batch_partitions
from fraud_assets.pipeline import clean_into_lake
from fraud_assets.raw_format import BatchMarker
from fraud_assets.schemas import CleanTransactions, QuarantinedTransactions
from resources.processing import PseudonymKey
from resources.storage import LakeStore, LandingZone

CLEAN = dg.AssetKey("clean_transactions")
QUARANTINE = dg.AssetKey("quarantined_transactions")


class CleaningSettings(dg.Config):
    max_terminal_id: int = 999_999
    origin_date: str | None = None  # YYYY-MM-DD; default: the batch marker's, else inferred


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CLEAN,
            deps=[raw_transactions],
            partitions_def=batch_partitions,
            group_name="cleaning",
            kinds={"polars", "parquet"},
            description="Repaired, de-duplicated, pseudonymised transactions; Parquet by date.",
        ),
        dg.AssetSpec(
            QUARANTINE,
            deps=[raw_transactions],
            partitions_def=batch_partitions,
            group_name="cleaning",
            kinds={"polars", "parquet"},
            description="Rows that could not be trusted: original line, line number, reason.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "rows_conserved",
            asset=CLEAN,
            blocking=True,
            description="raw rows = clean + quarantined + dropped duplicates",
        ),
        dg.AssetCheckSpec("clean_schema", asset=CLEAN, description="pandera CleanTransactions"),
        dg.AssetCheckSpec(
            "quarantine_schema", asset=QUARANTINE, description="pandera QuarantinedTransactions"
        ),
    ],
    can_subset=False,
)
def clean_transactions(
    context: dg.AssetExecutionContext,
    config: CleaningSettings,
    landing_zone: LandingZone,
    lake: LakeStore,
    pseudonym_key: PseudonymKey,
):
    batch_id = context.partition_key
    name = landing_zone.display_path(batch_id)
    marker = BatchMarker.from_json(landing_zone.marker(batch_id) or b"")
    origin = config.origin_date or (marker.origin_date if marker else None)
    settings = CleaningConfig(
        max_terminal_id=config.max_terminal_id,
        origin_date=dt.date.fromisoformat(origin) if origin else None,
    )
    try:
        with landing_zone.open_batch(batch_id) as stream:
            result = clean_into_lake(
                lake.lake(), stream.read(), batch_id, pseudonym_key.pseudonymizer(), settings, name
            )
    except RawBatchError as e:
        raise dg.Failure(description=str(e), metadata={"file": name}, allow_retries=False) from e

    yield dg.MaterializeResult(asset_key=CLEAN, metadata=_clean_metadata(result))
    yield dg.MaterializeResult(asset_key=QUARANTINE, metadata=_quarantine_metadata(result))
    yield dg.AssetCheckResult(
        check_name="rows_conserved",
        asset_key=CLEAN,
        passed=result.conserved,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "raw": result.raw_rows,
            "clean": result.clean.height,
            "quarantined": result.quarantine.height,
            "duplicates": result.duplicates,
        },
    )
    yield _schema_check("clean_schema", CLEAN, CleanTransactions, result.clean)
    yield _schema_check("quarantine_schema", QUARANTINE, QuarantinedTransactions, result.quarantine)


def _schema_check(name: str, key: dg.AssetKey, schema, frame) -> dg.AssetCheckResult:  # noqa: ANN001
    try:
        schema.validate(frame, lazy=True)
        return dg.AssetCheckResult(check_name=name, asset_key=key, passed=True)
    except pandera.errors.SchemaErrors as e:
        return dg.AssetCheckResult(
            check_name=name,
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failures": dg.MetadataValue.md(f"```\n{str(e)[:4000]}\n```")},
        )


def _clean_metadata(result: CleanResult) -> dict:
    repaired = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(result.repaired.items()))
    return {
        "dagster/row_count": result.clean.height,
        "raw_rows": result.raw_rows,
        "duplicates_dropped": result.duplicates,
        "quarantined": result.quarantine.height,
        "origin_date": result.origin.isoformat(),
        "repaired": dg.MetadataValue.md(f"| repaired | rows |\n|---|---:|\n{repaired}"),
    }


def _quarantine_metadata(result: CleanResult) -> dict:
    by_reason = sorted(result.quarantined_by_reason.items())
    table = "\n".join(f"| {reason} | {count:,} |" for reason, count in by_reason)
    return {
        "dagster/row_count": result.quarantine.height,
        "by_reason": dg.MetadataValue.md(f"| reason | rows |\n|---|---:|\n{table or '| - | 0 |'}"),
        **{f"reason/{reason}": count for reason, count in by_reason},
    }
