import dagster as dg

from fraud_assets.defs.raw import raw_transactions
from fraud_assets.partitions import batch_partitions

# One run per landed batch; later stages join this selection as they are built.
ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets(raw_transactions),
    partitions_def=batch_partitions,
    description="Ingest one landed batch (the partition key is the batch id).",
)
