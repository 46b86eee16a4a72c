import dagster as dg

from fraud_assets.defs.clean import clean_transactions
from fraud_assets.defs.drift import drift_report_asset
from fraud_assets.defs.features import transaction_features
from fraud_assets.defs.raw import raw_transactions
from fraud_assets.partitions import batch_partitions

# One run per landed batch: raw -> clean + quarantine -> features -> drift report.
ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets(
        raw_transactions, clean_transactions, transaction_features, drift_report_asset
    ),
    partitions_def=batch_partitions,
    description="Ingest, clean, featurise and drift-check one landed batch (partition = batch id).",
)
