import dagster as dg

from fraud_assets.defs.keys import BATCH_ASSETS
from fraud_assets.defs.partitions import batch_partitions

# Landed batches: raw -> clean + quarantine -> features -> drift report, for one batch or a range.
ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets(*BATCH_ASSETS),
    partitions_def=batch_partitions,
    description="Ingest, clean, featurise and drift-check landed batches (one batch, or a range "
    "of batches in one run; partition = batch id).",
)
