"""Which rows a batch's drift is judged against, and reading them once for a range of batches.

The policy, in order: a configured reference batch; else the champion's training window; else the
`reference_days` days before the batch (before there is a champion). A range of batches shares
its reads: one read per distinct batch or window, and one read of the union for the rolling
windows, each batch's window then cut from it in the same row order a read of its own would give.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lake import FEATURES, Lake

DEFAULT_REFERENCE_DAYS = 28


@dataclass(frozen=True)
class ReferencePolicy:
    reference_batch: str | None = None
    reference_days: int = DEFAULT_REFERENCE_DAYS


@dataclass(frozen=True)
class Reference:
    description: str
    batch_id: str | None = None  # a fixed batch
    first: dt.date | None = None  # or a window of dates (inclusive)
    last: dt.date | None = None

    def to_dict(self) -> dict:
        return {
            "description": self.description,
            "batch_id": self.batch_id,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        return cls(
            data["description"],
            data.get("batch_id"),
            dt.date.fromisoformat(data["first"]) if data.get("first") else None,
            dt.date.fromisoformat(data["last"]) if data.get("last") else None,
        )


def choose_reference(
    policy: ReferencePolicy,
    batch_first_day: dt.date,
    champion_version: int | None,
    champion_window: tuple[dt.date, dt.date] | None,
) -> Reference:
    if policy.reference_batch:
        return Reference(f"batch {policy.reference_batch}", batch_id=policy.reference_batch)
    if champion_window is not None:
        first, last = champion_window
        return Reference(
            f"champion v{champion_version}'s training window {first}..{last}",
            first=first,
            last=last,
        )
    first = batch_first_day - dt.timedelta(days=policy.reference_days)
    last = batch_first_day - dt.timedelta(days=1)
    return Reference(f"the {policy.reference_days} days before the batch", first=first, last=last)


class ReferenceReader:
    """Reference rows for many batches from as few lake reads as possible."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._batches: dict[str, pl.DataFrame] = {}
        self._windows: dict[tuple[dt.date, dt.date], pl.DataFrame] = {}
        self._union: tuple[dt.date, dt.date, pl.DataFrame] | None = None
        self._union_days: np.ndarray | None = None

    def prefetch(self, references: list[Reference]) -> None:
        """Read the union of the given date windows once (a range's rolling windows)."""
        windows = sorted({(r.first, r.last) for r in references if r.first and r.last})
        if len(windows) < 2:
            return
        first = min(w[0] for w in windows)
        last = max(w[1] for w in windows)
        frame = self.lake.read_by_date(FEATURES, first, last)
        self._union = (first, last, frame)
        # Days as integers, for slicing windows out of the union without a filter per batch.
        days = frame["tx_datetime"].dt.date().to_physical().to_numpy() if frame.height else None
        self._union_days = days if days is None or bool(np.all(days[1:] >= days[:-1])) else None

    def rows(self, reference: Reference) -> pl.DataFrame:
        if reference.batch_id is not None:
            if reference.batch_id not in self._batches:
                self._batches[reference.batch_id] = self.lake.read_batch(
                    FEATURES, reference.batch_id
                )
            return self._batches[reference.batch_id]
        assert reference.first is not None and reference.last is not None
        key = (reference.first, reference.last)
        if key in self._windows:
            return self._windows[key]
        if self._union is not None and self._union[0] <= key[0] and key[1] <= self._union[1]:
            union = self._union[2]
            if union.height == 0:
                return union
            # Files are read in (date, batch) order, so a date filter keeps the order a read of
            # this window alone would give. Not cached: each rolling window is used once.
            days = self._union_days
            if days is None:
                return union.filter(pl.col("tx_datetime").dt.date().is_between(*key))
            # Days never decrease along the union: the window is one slice (the same rows, in
            # the same order, as the filter, without scanning the union).
            epoch = dt.date(1970, 1, 1)
            start = int(np.searchsorted(days, (key[0] - epoch).days, side="left"))
            stop = int(np.searchsorted(days, (key[1] - epoch).days, side="right"))
            return union.slice(start, stop - start)
        frame = self.lake.read_by_date(FEATURES, *key)
        self._windows[key] = frame
        return frame
