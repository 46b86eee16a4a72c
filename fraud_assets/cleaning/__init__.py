"""Raw batch -> clean transactions + quarantined rows (DESIGN.md §3.2, §3.3)."""

from fraud_assets.cleaning.engine import CleaningConfig, CleanResult, clean_batch

__all__ = ["CleanResult", "CleaningConfig", "clean_batch"]
