"""The terminal registry: the bank's terminal master data, the terminals cleaning accepts.

The bank delivers it as `terminals.csv` in the landing zone (a `terminal_id` column, one terminal
a line; other columns are kept out). The `terminal_registry` asset checks it and stores it in the
lake; batch cleaning quarantines rows whose terminal is not in it as `unknown_terminal`. Without
a registry, cleaning falls back to a fixed maximum terminal id.

    {lake}/reference/terminals.parquet     terminal_id, sorted and distinct
    {lake}/reference/terminals.json        where it came from: source, sha256, count
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lake import Lake

REFERENCE = "reference"
ID_COLUMN = "terminal_id"


class RegistryError(ValueError):
    """A terminal file that cannot serve as the registry; the message names file and line."""


@dataclass(frozen=True)
class TerminalRegistry:
    ids: np.ndarray  # int64, sorted, distinct
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self) -> str:
        if not len(self.ids):
            return f"terminal registry from {self.source}: empty"
        return (
            f"terminal registry from {self.source}: {len(self.ids):,} terminals "
            f"(ids {int(self.ids[0])}..{int(self.ids[-1])})"
        )


def parse_registry(data: bytes, source: str) -> TerminalRegistry:
    """Read a terminals CSV; every `terminal_id` must be a non-negative integer."""
    sha = hashlib.sha256(data).hexdigest()
    text = data.removeprefix(b"\xef\xbb\xbf")  # a spreadsheet's byte-order mark
    try:
        frame = pl.read_csv(io.BytesIO(text), infer_schema=False)
    except pl.exceptions.PolarsError as e:
        raise RegistryError(f"{source}: not a CSV file ({str(e).splitlines()[0]})") from None
    if ID_COLUMN not in frame.columns:
        raise RegistryError(
            f"{source} line 1: no `{ID_COLUMN}` column (found: {', '.join(frame.columns)[:200]})"
        )
    raw = frame[ID_COLUMN].str.strip_chars()
    ids = raw.cast(pl.Int64, strict=False)
    bad = (ids.is_null() | (ids < 0)).fill_null(True)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise RegistryError(
            f"{source} line {row + 2}: terminal id {raw[row]!r} is not a non-negative integer "
            f"({int(bad.sum())} such line(s))"
        )
    return TerminalRegistry(np.unique(ids.to_numpy()), source, sha)


def write_registry(lake: Lake, registry: TerminalRegistry) -> None:
    """Store the registry; each file is written aside and moved into place."""
    lake.fs.makedirs(lake.path(REFERENCE), exist_ok=True)
    table = lake.path(REFERENCE, "terminals.parquet")
    with lake.fs.open(f"{table}.tmp", "wb") as f:
        pl.DataFrame({ID_COLUMN: registry.ids}, schema={ID_COLUMN: pl.Int64}).write_parquet(f)
    lake.fs.mv(f"{table}.tmp", table)
    meta = lake.path(REFERENCE, "terminals.json")
    with lake.fs.open(f"{meta}.tmp", "w", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {"source": registry.source, "sha256": registry.sha256, "terminals": len(registry)},
                sort_keys=True,
            )
        )
    lake.fs.mv(f"{meta}.tmp", meta)


def read_registry(lake: Lake) -> TerminalRegistry | None:
    """The stored registry; None when none has been materialized yet."""
    lake.fs.invalidate_cache(lake.root)
    table, meta = lake.path(REFERENCE, "terminals.parquet"), lake.path(REFERENCE, "terminals.json")
    if not (lake.fs.exists(table) and lake.fs.exists(meta)):
        return None
    info = json.loads(lake.fs.cat_file(meta))
    with lake.fs.open(table, "rb") as f:
        ids = pl.read_parquet(f)[ID_COLUMN].to_numpy()
    return TerminalRegistry(ids, info["source"], info["sha256"])


def write_terminals_csv(ids: np.ndarray) -> bytes:
    """The registry file's format, as the simulator delivers it."""
    return b"terminal_id\n" + b"".join(b"%d\n" % int(i) for i in ids)
