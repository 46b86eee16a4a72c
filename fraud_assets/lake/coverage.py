"""What a clean batch covers (dates, rows, version), and which look-back dates nobody covers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


class MissingHistoryError(RuntimeError):
    """A batch's look-back history is not in the clean store (e.g. batches arrived out of order)."""


@dataclass(frozen=True)
class BatchCoverage:
    batch_id: str
    first_date: str
    last_date: str
    rows: int
    origin: str
    content: str = ""  # digest of the batch's clean rows: changes exactly when they change

    def dates(self) -> list[dt.date]:
        first, last = dt.date.fromisoformat(self.first_date), dt.date.fromisoformat(self.last_date)
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def missing_history(
    batch: BatchCoverage, known: dict[str, BatchCoverage], lookback_days: int
) -> list[dt.date]:
    """Dates in the batch's look-back window that no clean batch covers.

    The window starts no earlier than the data's origin (the first day of the data), so the very
    first batch needs no history.
    """
    first = dt.date.fromisoformat(batch.first_date)
    origin = dt.date.fromisoformat(batch.origin)
    start = max(origin, first - dt.timedelta(days=lookback_days))
    covered = {d for c in known.values() for d in c.dates()}
    needed = [start + dt.timedelta(days=i) for i in range((first - start).days)]
    return [d for d in needed if d not in covered]
