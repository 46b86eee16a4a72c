"""The raw batch file contract (DESIGN.md §3.1), shared by the simulator, ingestion and cleaning."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

# Byte-exact first line of every batch file, misspelling included: the bank's export has it so.
HEADER = (
    "# tranaction_id | tx_datetime | customer_id | terminal_id | tx_amount"
    " | tx_time_seconds | tx_time_days | tx_fraud | tx_fraud_scenario"
)
HEADER_LINE = (HEADER + "\n").encode()

COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_time_seconds",
    "tx_time_days",
    "tx_fraud",
    "tx_fraud_scenario",
)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

DATA_SUFFIX = ".txt"
MARKER_SUFFIX = ".done"
MANIFEST_SUFFIX = ".dirty.csv"

# A batch id is the file stem: a calendar date. Anything else in the landing zone is not a batch.
BATCH_ID_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_batch_id(stem: str) -> bool:
    return bool(BATCH_ID_PATTERN.match(stem))


def data_name(batch_id: str) -> str:
    return batch_id + DATA_SUFFIX


def marker_name(batch_id: str) -> str:
    return batch_id + MARKER_SUFFIX


def manifest_name(batch_id: str) -> str:
    return batch_id + MANIFEST_SUFFIX


@dataclass(frozen=True)
class BatchMarker:
    """Completion marker, written after the data file: its presence means the batch is whole.

    It also carries what the writer knew, so ingestion can verify the file it reads.
    """

    batch_id: str
    rows: int
    bytes: int
    sha256: str
    origin_date: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchMarker | None:
        """Parse a marker; None when it is not ours (an empty `_SUCCESS`-style one is valid too)."""
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError):
            return None
