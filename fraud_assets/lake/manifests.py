"""A batch's commit per stage: one small JSON file naming every data file of that version.

    {root}/_commits/{stage}/{batch_id}.json

The manifest is written last and in one step (lake/atomic.py), so it is the commit: a data file
is part of the lake exactly when a manifest names it. Paths are relative to the lake root, so a
lake can be copied or moved as a whole.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = 1
COMMITS = "_commits"


def new_commit_id() -> str:
    """Unique, and sorts by time: 20250101T120000-3f9a1c2e."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class FileEntry:
    table: str  # clean, quarantine, features, restricted/quarantine
    path: str  # relative to the lake root
    rows: int
    date: str | None = None  # transaction date of a date-partitioned table's file
    encrypted: bool = False

    @property
    def day(self) -> dt.date | None:
        return dt.date.fromisoformat(self.date) if self.date else None


@dataclass(frozen=True)
class Commit:
    stage: str
    batch_id: str
    commit_id: str
    committed_at: str  # ISO time, UTC
    files: tuple[FileEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the clean batch's coverage

    def of(self, table: str) -> list[FileEntry]:
        return [f for f in self.files if f.table == table]

    def rows(self, table: str) -> int:
        return sum(f.rows for f in self.of(table))

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "stage": self.stage,
            "batch_id": self.batch_id,
            "commit_id": self.commit_id,
            "committed_at": self.committed_at,
            "files": [asdict(f) for f in self.files],
            "meta": self.meta,
        }
        return json.dumps(data, sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> Commit:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown lake manifest format {data.get('format')!r}")
        return cls(
            stage=data["stage"],
            batch_id=data["batch_id"],
            commit_id=data["commit_id"],
            committed_at=data["committed_at"],
            files=tuple(FileEntry(**f) for f in data["files"]),
            meta=data.get("meta") or {},
        )


def manifest_path(stage: str, batch_id: str) -> str:
    return f"{COMMITS}/{stage}/{batch_id}.json"
