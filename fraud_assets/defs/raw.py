import dagster as dg

from fraud_assets.ingestion import RawBatchError, inspect_raw_batch
from fraud_assets.partitions import batch_partitions
from resources.storage import LandingZone


@dg.asset(
    partitions_def=batch_partitions,
    group_name="ingestion",
    kinds={"file"},
    description=(
        "A raw transaction batch as it landed: header verified, rows and bytes counted, "
        "checksum recorded and compared with the batch's completion marker."
    ),
)
def raw_transactions(
    context: dg.AssetExecutionContext, landing_zone: LandingZone
) -> dg.MaterializeResult:
    batch_id = context.partition_key
    name = landing_zone.display_path(batch_id)
    try:
        with landing_zone.open_batch(batch_id) as stream:
            stats = inspect_raw_batch(stream, name, landing_zone.marker(batch_id))
    except FileNotFoundError as e:
        raise dg.Failure(
            f"{name}: batch file not found in the landing zone", allow_retries=False
        ) from e
    except RawBatchError as e:
        raise dg.Failure(description=str(e), metadata={"file": name}, allow_retries=False) from e
    context.log.info(f"{name}: {stats.rows:,} rows, {stats.bytes:,} bytes")
    return dg.MaterializeResult(
        metadata={
            "file": dg.MetadataValue.path(name),
            "dagster/row_count": stats.rows,
            "bytes": stats.bytes,
            "sha256": stats.sha256,
        }
    )
