"""The committed rows of a table as one Parquet file, for people and tools outside the platform.

Polars streams the committed files into the result (`scan_parquet` → `sink_parquet`), so a table
larger than memory exports too. Files that are not plain local files (on S3, or encrypted in the
restricted zone) are first copied, decrypted, to a temporary folder. The result is written under
a temporary name and moved into place when complete: a reader never finds half an export.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fraud_assets.lake import restricted
from fraud_assets.lake.atomic import is_local
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.lake.manifests import FileEntry
from fraud_assets.lake.store import Lake


class EmptyTableError(RuntimeError):
    """The table has no committed file yet."""


@dataclass(frozen=True)
class Exported:
    table: str
    rows: int
    files: int
    batches: int


def export_table(lake: Lake, table: str, destination: str) -> Exported:
    entries = lake.files(table)
    if not entries:
        raise EmptyTableError(f"table {table!r} of {lake.root} has no committed data yet")
    fs, target = filesystem_for(destination)
    with tempfile.TemporaryDirectory(prefix="fraud-export-") as scratch:
        sources = [_local_source(lake, entry, Path(scratch), i) for i, entry in enumerate(entries)]
        if is_local(fs):
            parent = os.path.dirname(target) or "."
            os.makedirs(parent, exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=parent, prefix=".export-", suffix=".tmp")
            os.close(handle)
        else:
            partial = str(Path(scratch) / "export.parquet")
        try:
            pl.scan_parquet(sources, hive_partitioning=False).sink_parquet(
                partial, compression="snappy"
            )
            rows = pl.scan_parquet(partial).select(pl.len()).collect().item()
            if is_local(fs):
                os.replace(partial, target)
            else:
                fs.put_file(partial, target)  # one upload: the object appears whole
        finally:
            if is_local(fs) and os.path.exists(partial):
                os.unlink(partial)
    batches = {Path(e.path).name.split(".", 1)[0] for e in entries}
    return Exported(table, rows, len(entries), len(batches))


def _local_source(lake: Lake, entry: FileEntry, scratch: Path, index: int) -> str:
    """A local path Polars can scan: the file itself, or a decrypted or downloaded copy."""
    path = lake.path(entry.path)
    if is_local(lake.fs) and not entry.encrypted:
        return path
    data = lake.fs.cat_file(path)
    if entry.encrypted:
        data = restricted.decrypt(data, lake.quarantine_key, path)
    copy = scratch / f"{index:06d}.parquet"
    copy.write_bytes(data)
    return str(copy)
