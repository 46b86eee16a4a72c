"""What sits in a landing zone: complete batches, batches still arriving, and other files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fsspec import AbstractFileSystem

from fraud_assets.lake.filesystems import join
from fraud_assets.rawdata.format import (
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    MARKER_SUFFIX,
    TERMINALS_FILE,
    BatchMarker,
    data_name,
    is_batch_id,
    marker_name,
)


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    path: str
    size: int
    complete: bool  # the completion marker is present

    @property
    def name(self) -> str:
        return data_name(self.batch_id)


@dataclass(frozen=True)
class LandingListing:
    batches: list[LandedBatch]
    ignored: list[str]  # names that look like neither a batch nor a marker

    @property
    def complete(self) -> list[LandedBatch]:
        return [b for b in self.batches if b.complete]

    @property
    def incomplete(self) -> list[LandedBatch]:
        return [b for b in self.batches if not b.complete]


def list_landing(fs: AbstractFileSystem, root: str) -> LandingListing:
    # Object-store filesystems cache listings; a sensor must see what landed since the last tick.
    fs.invalidate_cache(root)
    if not fs.exists(root):
        return LandingListing([], [])
    entries = {
        e["name"].rstrip("/").rsplit("/", 1)[-1]: e
        for e in fs.ls(root, detail=True)
        if e.get("type") != "directory"
    }
    batches, ignored = [], []
    for name, entry in sorted(entries.items()):
        if name.endswith(DATA_SUFFIX) and is_batch_id(name[: -len(DATA_SUFFIX)]):
            batch_id = name[: -len(DATA_SUFFIX)]
            batches.append(
                LandedBatch(
                    batch_id=batch_id,
                    path=entry["name"],
                    size=int(entry.get("size") or 0),
                    complete=marker_name(batch_id) in entries,
                )
            )
        elif not (
            name.endswith(MARKER_SUFFIX) or name.endswith(MANIFEST_SUFFIX) or name == TERMINALS_FILE
        ):
            ignored.append(name)
    return LandingListing(batches, ignored)


def read_marker(fs: AbstractFileSystem, root: str, batch_id: str) -> bytes | None:
    path = join(root, marker_name(batch_id))
    return fs.cat_file(path) if fs.exists(path) else None


def batch_fingerprint(batch: LandedBatch, marker: bytes | None) -> str:
    """Identifies one delivery of a batch: a re-landed, changed batch gets a new fingerprint.

    Our markers carry the file's SHA-256; for a foreign marker (e.g. an empty `_SUCCESS`-style
    file) the size of the data file and the marker's own bytes stand in.
    """
    parsed = BatchMarker.from_json(marker) if marker else None
    if parsed is not None:
        return parsed.sha256[:16]
    return hashlib.sha256(f"{batch.size}:".encode() + (marker or b"")).hexdigest()[:16]
