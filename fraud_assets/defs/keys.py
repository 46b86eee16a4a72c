"""Keys of the batch assets, apart from the step that materializes them (events, sensors, jobs)."""

import dagster as dg

RAW = dg.AssetKey("raw_transactions")
CLEAN = dg.AssetKey("clean_transactions")
QUARANTINE = dg.AssetKey("quarantined_transactions")
FEATURES = dg.AssetKey("transaction_features")
DRIFT = dg.AssetKey("drift_report")
BATCH_ASSETS = (RAW, CLEAN, QUARANTINE, FEATURES, DRIFT)
CHAMPION_REVIEW = dg.AssetKey("champion_review")  # the champion drift reports score with

__all__ = ["BATCH_ASSETS", "CHAMPION_REVIEW", "CLEAN", "DRIFT", "FEATURES", "QUARANTINE", "RAW"]
