"""Small files written whole or not at all: manifests, coverage, lineage, specs, snapshots.

On a local disk the bytes go to a temporary file in the same folder, are flushed to the device,
and `os.replace` puts them in place: a reader sees the old file or the new one, never a part. On
an object store (S3, GCS, Azure) one PUT is already atomic, so the file is written in one call.
Elsewhere (HDFS) a temporary file is renamed, which those file systems do atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from fraud_assets.lake.crash import MID_MANIFEST, armed, die

# One PUT (or one in-memory assignment) replaces the whole object: no rename needed.
_WHOLE_OBJECT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "abfs", "az", "memory"}


def is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _protocols(fs: AbstractFileSystem) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


def write_atomic(
    fs: AbstractFileSystem, path: str, data: bytes, crash_stage: str | None = None
) -> None:
    """Put `data` at `path` in one step. `crash_stage` arms the mid-manifest crash point."""
    parent, name = path.rsplit("/", 1)
    half = crash_stage is not None and armed(crash_stage, MID_MANIFEST)
    if is_local(fs):
        os.makedirs(parent, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                if half:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    die()
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        sync_folder(parent)
        return
    if half:
        die()  # a single PUT has no half: the crash leaves nothing
    if _protocols(fs) & _WHOLE_OBJECT_PROTOCOLS:
        fs.pipe_file(path, data)
        return
    tmp = f"{parent}/.{name}.{secrets.token_hex(4)}.tmp"
    fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(tmp, data)
    fs.mv(tmp, path)


def write_json_atomic(fs: AbstractFileSystem, path: str, data: Any) -> None:  # noqa: ANN401
    write_atomic(fs, path, json.dumps(data, sort_keys=True).encode("utf-8"))


def write_text_atomic(fs: AbstractFileSystem, path: str, text: str) -> None:
    write_atomic(fs, path, text.encode("utf-8"))


def sync_file(path: str) -> None:
    """Flush a local file to the device (data before the commit that names it)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def sync_folder(path: str) -> None:
    """Flush a local folder's entries, so a rename survives a power cut."""
    with contextlib.suppress(OSError):  # some file systems cannot open folders
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
