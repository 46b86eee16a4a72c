"""The committed rows of a table as one Parquet file, for people and tools outside the platform.

Files are copied one at a time through a Parquet writer, so a table larger than memory exports
too; the result is written under a temporary name and moved into place when complete.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from fraud_assets.filesystems import filesystem_for
from fraud_assets.lake import restricted
from fraud_assets.lake.atomic import is_local
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
    fs, path = filesystem_for(destination)
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    target = (
        f"{parent}/.{path.rsplit('/', 1)[-1]}.{secrets.token_hex(4)}.tmp" if is_local(fs) else path
    )
    fs.makedirs(parent, exist_ok=True)
    rows = 0
    schema = None
    try:
        with fs.open(target, "wb") as out:
            writer = None
            for entry in entries:
                part = _read_arrow(lake, entry.path, entry.encrypted)
                if schema is None:
                    schema = part.schema
                    writer = pq.ParquetWriter(out, schema, compression="snappy")
                writer.write_table(part.cast(schema))
                rows += part.num_rows
            writer.close()
        if target != path:
            fs.mv(target, path)
    except BaseException:
        if target != path and fs.exists(target):
            fs.rm(target)
        raise
    return Exported(
        table, rows, len(entries), len({e.path.rsplit("/", 1)[-1].split(".")[0] for e in entries})
    )


def _read_arrow(lake: Lake, relative: str, encrypted: bool) -> pa.Table:
    path = lake.path(relative)
    data = lake.fs.cat_file(path)
    if encrypted:
        data = restricted.decrypt(data, lake.quarantine_key, path)
    return pq.read_table(io.BytesIO(data))
