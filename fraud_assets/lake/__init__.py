"""The lake: Parquet tables committed batch by batch through manifests (docs/lake.md).

`Lake` writes and reads; `BatchCoverage` is what a clean batch covers; `missing_history` names
the look-back dates no batch covers yet.
"""

from fraud_assets.lake.coverage import BatchCoverage, MissingHistoryError, missing_history
from fraud_assets.lake.manifests import Commit, FileEntry
from fraud_assets.lake.store import (
    BY_DATE,
    CLEAN,
    FEATURES,
    FEEDBACK,
    QUARANTINE,
    REPORTS,
    RESTRICTED_QUARANTINE,
    STAGES,
    TABLES,
    Lake,
    LakeReadError,
    stage_of,
)


def committed_urls(lake: Lake, table: str, for_spark: bool = True) -> list[str]:
    """URLs of a table's committed files (`s3a://` on S3 for Spark): read these, not a glob."""
    return lake.urls(table, for_spark=for_spark)


__all__ = [
    "BY_DATE",
    "CLEAN",
    "FEATURES",
    "FEEDBACK",
    "QUARANTINE",
    "REPORTS",
    "RESTRICTED_QUARANTINE",
    "STAGES",
    "TABLES",
    "BatchCoverage",
    "Commit",
    "FileEntry",
    "Lake",
    "LakeReadError",
    "MissingHistoryError",
    "committed_urls",
    "missing_history",
    "stage_of",
]
