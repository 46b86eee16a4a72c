"""The service's durable label log: every /v1/feedback label, appended before it is applied.

    LabelLog(directory)          .append(record) ; .read() -> list[dict]
    read_label_log(directory) -> polars.DataFrame   every record, oldest first (LABEL_COLUMNS)
    latest_labels(log) -> polars.DataFrame          the newest label per transaction id

Why a log: labels used to live only in the online store, lost with a Redis restart and never
seen by training. Each process appends JSON lines to its own file
`labels-YYYY-MM-DD-<host>-<pid>.jsonl` (by the day the label arrived), flushed and fsync'ed
before the request is answered, so a 200 means the label is on disk. Several workers or hosts
can share one directory (a network volume) without interleaving lines. The `fraud_labels`
asset turns the log into the lake table of the same name.

Ids are the pseudonymised ones (as in the lake); the raw ids never reach the log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

LABEL_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "tx_time_seconds",
    "tx_datetime",
    "fraud",
    "labelled_at",
    "source",
    "known_at_seconds",  # the data clock when recorded (null in records written before it)
)


class LabelLog:
    """Append-only JSON-lines files in `directory`, one per process and day."""

    def __init__(self, directory: str | Path, prefix: str = "labels") -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._tag = f"{socket.gethostname()}-{os.getpid()}"

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        day = dt.datetime.now(dt.UTC).date().isoformat()
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{self.prefix}-{day}-{self._tag}.jsonl"
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        return _read(self.directory, self.prefix)


def _read(directory: Path, prefix: str = "labels") -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"{prefix}-*.jsonl")) if directory.is_dir() else []:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a torn last line (crash mid-write) is not a label
                    records.append(json.loads(line))
    return records


def read_label_log(directory: str | Path):  # noqa: ANN201 - polars.DataFrame
    import polars as pl

    records = _read(Path(directory))
    schema = {
        "transaction_id": pl.Int64,
        "customer_id": pl.Int64,
        "terminal_id": pl.Int64,
        "tx_time_seconds": pl.Int64,
        "tx_datetime": pl.String,
        "fraud": pl.Boolean,
        "labelled_at": pl.String,
        "source": pl.String,
        "known_at_seconds": pl.Int64,
    }
    frame = pl.DataFrame([{k: r.get(k) for k in LABEL_COLUMNS} for r in records], schema=schema)
    return frame.with_columns(
        pl.col("tx_datetime").str.to_datetime(time_unit="us"),
        pl.col("labelled_at").str.to_datetime(time_unit="us", time_zone="UTC"),
    ).sort("labelled_at", maintain_order=True)


def latest_labels(log):  # noqa: ANN001, ANN201 - polars.DataFrame in and out
    """The newest label per transaction (a correction replaces the earlier verdict)."""
    return log.unique("transaction_id", keep="last", maintain_order=True).sort(
        "tx_time_seconds", "transaction_id"
    )
