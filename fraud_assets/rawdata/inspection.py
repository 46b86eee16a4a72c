"""First look at a landed raw batch: is it ours, is it whole, how big is it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO

from fraud_assets.rawdata.format import HEADER, HEADER_LINE, BatchMarker

CHUNK = 8 << 20


class RawBatchError(ValueError):
    """A batch file that cannot be ingested; the message names the file and the line."""


@dataclass(frozen=True)
class RawBatchStats:
    rows: int  # data lines after the header
    bytes: int
    sha256: str


def inspect_raw_batch(stream: IO[bytes], name: str, marker: bytes | None = None) -> RawBatchStats:
    """Check the header byte for byte, then count rows and bytes and hash the file in one pass.

    Reads in chunks, so a 3 GB batch costs a few MB of memory.
    """
    first = stream.read(len(HEADER_LINE))
    if first != HEADER_LINE:
        start = first + stream.read(300)
        found = start.split(b"\n", 1)[0].decode("utf-8", "replace")[:200] or "<empty file>"
        raise RawBatchError(
            f"{name} line 1: header does not match the raw batch format{_hint(start)}.\n"
            f"  expected: {HEADER}\n  found:    {found}"
        )
    digest = hashlib.sha256(first)
    size, newlines, last = len(first), 0, b"\n"
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    rows = newlines + (last != b"\n")  # a last line without its newline still counts
    stats = RawBatchStats(rows=rows, bytes=size, sha256=digest.hexdigest())
    _check_against_marker(stats, name, marker)
    return stats


def _hint(start: bytes) -> str:
    """What a wrong first line most likely is, when we can tell."""
    if start.startswith(b"\x1f\x8b"):
        return " (the file is gzip-compressed: land it uncompressed)"
    if start.startswith(b"\xef\xbb\xbf"):
        return " (the file starts with a UTF-8 byte-order mark)"
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        return " (the file is UTF-16: land it as UTF-8)"
    return ""


def _check_against_marker(stats: RawBatchStats, name: str, marker: bytes | None) -> None:
    expected = BatchMarker.from_json(marker) if marker else None
    if expected is None:
        return  # a foreign marker only says "complete"; nothing to compare
    if (expected.sha256, expected.bytes) != (stats.sha256, stats.bytes):
        raise RawBatchError(
            f"{name}: file does not match its completion marker "
            f"(marker: {expected.bytes} bytes, sha256 {expected.sha256[:12]}…; "
            f"file: {stats.bytes} bytes, sha256 {stats.sha256[:12]}…). "
            "Was it changed or truncated after the marker was written?"
        )
