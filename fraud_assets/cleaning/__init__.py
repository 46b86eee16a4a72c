"""Raw batch -> clean transactions + quarantined rows (docs/raw-batches.md)."""

from fraud_assets.cleaning.engine import CleaningConfig, CleanResult, clean_batch

__all__ = ["CleanResult", "CleaningConfig", "clean_batch"]
