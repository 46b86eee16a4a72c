"""The raw batch file contract (docs/raw-batches.md): simulator, ingestion and cleaning share it."""

from __future__ import annotations

import datetime as dt
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
# The bank's terminal master data, delivered to the landing zone beside the batches.
TERMINALS_FILE = "terminals.csv"

# A batch id is the file stem: a calendar date. Anything else in the landing zone is not a batch.
BATCH_ID_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def looks_like_batch_id(stem: str) -> bool:
    """Shaped like YYYY-MM-DD (maybe not a real date: `2025-13-45`)."""
    return bool(BATCH_ID_PATTERN.match(stem))


def is_batch_id(stem: str) -> bool:
    """A real calendar date, YYYY-MM-DD."""
    if not looks_like_batch_id(stem):
        return False
    try:
        dt.date.fromisoformat(stem)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BatchPeriod:
    """The days a batch's transactions must fall on, both included.

    A timestamp belongs to the period from the first day's 00:00:00 up to and including the
    midnight that ends the last day: that is where an export's `24:00:00` of the last day lands.
    """

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"period ends ({self.last}) before it starts ({self.first})")

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time())

    @property
    def end(self) -> dt.datetime:
        """The last instant inside the period: midnight after the last day."""
        return dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time())

    def __str__(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


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
    # The days the batch's transactions fall on (a monthly export declares its month); without
    # them a batch covers the day its id names.
    first_date: str | None = None
    last_date: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchMarker | None:
        """Parse a marker; None when it is not ours (an empty `_SUCCESS`-style one is valid too)."""
        try:
            data = json.loads(text)
            required = {k: data[k] for k in _REQUIRED_MARKER_FIELDS}
            optional = {k: data.get(k) for k in ("first_date", "last_date")}
            return cls(**required, **optional)
        except (ValueError, KeyError, TypeError):
            return None


_REQUIRED_MARKER_FIELDS = ("batch_id", "rows", "bytes", "sha256", "origin_date")


def batch_period(batch_id: str, marker: BatchMarker | None) -> BatchPeriod:
    """The period a marker declares, else the day the batch id names.

    Raises ValueError (with the reason) for a batch id that is not a date or a marker whose
    period is not made of dates in order.
    """
    if marker is not None and (marker.first_date or marker.last_date):
        first = marker.first_date or marker.last_date
        last = marker.last_date or marker.first_date
        try:
            return BatchPeriod(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"completion marker declares an invalid period ({first}..{last}): {e}"
            ) from None
    if not is_batch_id(batch_id):
        raise ValueError(f"batch id {batch_id!r} is not a date (YYYY-MM-DD)")
    day = dt.date.fromisoformat(batch_id)
    return BatchPeriod(day, day)
