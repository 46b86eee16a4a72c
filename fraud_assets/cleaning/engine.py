"""Clean one raw batch: repair what can be repaired, quarantine the rest, lose nothing.

Every data line ends in exactly one place: the clean table, the quarantine (with its line number,
text and reason) or the count of dropped duplicates, so raw = clean + quarantined + duplicates.
Amounts are never clipped: scenario 1 fraud *is* large amounts; an amount above the configured
maximum (an impossible one, such as 1e308) is quarantined, not reduced. Rows that break the data
contract (`cleaning/rules.py`) are quarantined with the rule's reason.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from fraud_assets.cleaning.parsing import ROW_SCHEMA, parse_batch
from fraud_assets.cleaning.rules import (
    DEFAULT_MAX_AMOUNT,
    DEFAULT_MAX_TERMINAL_ID,
    CommittedLookup,
    RowRules,
)
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import BatchPeriod

SECONDS_PER_DAY = 86_400

CLEAN_SCHEMA = {**ROW_SCHEMA, "batch_id": pl.String}
QUARANTINE_SCHEMA = {
    "batch_id": pl.String,
    "line_no": pl.Int64,
    "line": pl.String,
    "reason": pl.String,
}


@dataclass(frozen=True)
class CleaningConfig:
    # Without a terminal registry, terminal ids above this are not ours (broken exports carry
    # ids like 89518096); with one, ids not in it are quarantined as unknown terminals.
    max_terminal_id: int = DEFAULT_MAX_TERMINAL_ID
    # Day the time counters count from; None: the batch marker's, else inferred from the rows.
    origin_date: dt.date | None = None
    max_amount: float = DEFAULT_MAX_AMOUNT
    terminals: np.ndarray | None = None  # the terminal registry's raw ids, sorted and distinct
    period: BatchPeriod | None = None  # the batch's days; None: timestamps are not checked
    committed: CommittedLookup | None = None  # ids other batches committed; None: not checked

    def rules(self) -> RowRules:
        return RowRules(
            max_amount=self.max_amount,
            max_terminal_id=self.max_terminal_id,
            terminals=self.terminals,
            period=self.period,
            committed=self.committed,
        )


@dataclass
class CleanResult:
    batch_id: str
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    raw_rows: int
    duplicates: int
    origin: dt.date
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        return dict(Counter(self.quarantine["reason"].to_list()))

    @property
    def conserved(self) -> bool:
        return self.raw_rows == self.clean.height + self.quarantine.height + self.duplicates


def clean_batch(
    source: str | Path | IO[bytes] | bytes,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    config: CleaningConfig = CleaningConfig(),
    name: str | None = None,
) -> CleanResult:
    name = name or str(source if isinstance(source, str | Path) else batch_id)
    parsed = parse_batch(source, name, config.rules())
    raw_rows = parsed.raw_rows
    quarantine = parsed.rejected.select(
        pl.lit(batch_id).alias("batch_id"), "line_no", "line", "reason"
    )
    valid = parsed.valid
    del parsed  # a 47 M-row batch is GBs per copy: keep as few alive as possible
    unique, in_id_order = first_occurrences(valid)
    duplicates = valid.height - unique.height
    del valid
    origin = config.origin_date or _infer_origin(unique)
    clean, repaired = finish_rows(unique, in_id_order, batch_id, pseudonymizer, origin)
    del unique
    return CleanResult(
        batch_id=batch_id,
        clean=clean,
        quarantine=quarantine.cast(QUARANTINE_SCHEMA),
        raw_rows=raw_rows,
        duplicates=duplicates,
        origin=origin,
        repaired=repaired,
    )


def first_occurrences(valid: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """Exact copies and re-sent ids: the first occurrence in file order of each id, and whether
    the ids strictly increase already (an export in id order: distinct, no hashing, no copy)."""
    in_id_order = _strictly_increasing(valid["transaction_id"])
    unique = valid if in_id_order else valid.filter(pl.col("transaction_id").is_first_distinct())
    return unique, in_id_order


def finish_rows(
    unique: pl.DataFrame,
    in_id_order: bool,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    origin: dt.date,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Distinct good rows -> the clean table (time repaired against `origin`, pseudonyms, in id
    order) and the repaired counters. The Spark engine runs it on each byte range's rows."""
    clean, repaired = _repair_time(unique, origin)
    clean = clean.with_columns(
        customer_id=pseudonymizer.column(clean["customer_id"], "customer"),
        terminal_id=pseudonymizer.column(clean["terminal_id"], "terminal"),
        batch_id=pl.lit(batch_id),
    ).select(list(CLEAN_SCHEMA))
    if not in_id_order and not clean["transaction_id"].is_sorted():
        clean = clean.sort("transaction_id")
    return clean.cast(CLEAN_SCHEMA), repaired


def _strictly_increasing(ids: pl.Series) -> bool:
    values = ids.to_numpy()
    return bool(np.all(values[1:] > values[:-1]))


def _infer_origin(valid: pl.DataFrame) -> dt.date:
    """The most common (timestamp - seconds) day: most rows carry correct counters."""
    if valid.height == 0:
        return dt.date(1970, 1, 1)
    candidates = (pl.col("tx_datetime") - pl.duration(seconds=pl.col("tx_time_seconds"))).dt.date()
    return valid.select(candidates.mode().sort().first()).item()


def _repair_time(valid: pl.DataFrame, origin: dt.date) -> tuple[pl.DataFrame, dict[str, int]]:
    """Seconds and days are recomputed from the (hour-24-fixed) timestamp against the origin."""
    since = (
        pl.col("tx_datetime") - pl.lit(dt.datetime.combine(origin, dt.time()))
    ).dt.total_seconds()
    repaired = valid.with_columns(new_seconds=since, new_days=since // SECONDS_PER_DAY)
    counts = repaired.select(
        hour_24=pl.col("hour_24").sum(),
        tx_time_seconds=(pl.col("new_seconds") != pl.col("tx_time_seconds")).sum(),
        tx_time_days=(pl.col("new_days") != pl.col("tx_time_days")).sum(),
    ).row(0, named=True)
    fixed = repaired.with_columns(
        tx_time_seconds=pl.col("new_seconds"), tx_time_days=pl.col("new_days")
    ).drop("new_seconds", "new_days", "hour_24", "line_no")
    return fixed, {k: int(v or 0) for k, v in counts.items()}
