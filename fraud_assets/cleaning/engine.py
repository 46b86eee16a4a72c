"""Clean one raw batch with Polars: repair what can be repaired, quarantine the rest, lose nothing.

Every data line ends in exactly one place: the clean table, the quarantine (with its line number,
text and reason) or the count of dropped duplicates, so raw = clean + quarantined + duplicates.
Amounts are never clipped: scenario 1 fraud *is* large amounts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl

from fraud_assets.defects import Defect
from fraud_assets.ingestion import RawBatchError
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.raw_format import COLUMNS, DATETIME_FORMAT, HEADER

SECONDS_PER_DAY = 86_400
INVALID_LABEL = "invalid_label"  # tx_fraud not 0/1 or scenario not 0-3: a label we cannot trust

CLEAN_SCHEMA = {
    "transaction_id": pl.Int64,
    "tx_datetime": pl.Datetime("us"),
    "customer_id": pl.Int64,
    "terminal_id": pl.Int64,
    "tx_amount": pl.Float64,
    "tx_time_seconds": pl.Int64,
    "tx_time_days": pl.Int64,
    "tx_fraud": pl.Int8,
    "tx_fraud_scenario": pl.Int8,
    "batch_id": pl.String,
}
QUARANTINE_SCHEMA = {
    "batch_id": pl.String,
    "line_no": pl.Int64,
    "line": pl.String,
    "reason": pl.String,
}


@dataclass(frozen=True)
class CleaningConfig:
    # Terminal ids above this are not ours (the bank's fleet is 0..999 in the reference export;
    # broken exports carry ids like 89518096).
    max_terminal_id: int = 999_999
    # Day the time counters count from; None: the batch marker's, else inferred from the rows.
    origin_date: dt.date | None = None


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
    lines = pl.scan_lines(source, row_index_name="line_no", row_index_offset=1)
    header = lines.head(1).collect()
    if header.height == 0 or header["line"][0].rstrip("\r") != HEADER:
        found = header["line"][0] if header.height else "<empty file>"
        raise RawBatchError(
            f"{name} line 1: header does not match the raw batch format.\n"
            f"  expected: {HEADER}\n  found:    {found[:200]}"
        )
    parsed = _parse(lines.filter(pl.col("line_no") > 1), config).collect(engine="streaming")
    raw_rows = parsed.height

    quarantine = parsed.filter(pl.col("reason").is_not_null()).select(
        pl.lit(batch_id).alias("batch_id"),
        pl.col("line_no").cast(pl.Int64),
        "line",
        "reason",
    )
    valid = parsed.filter(pl.col("reason").is_null())
    del parsed  # a 47 M-row batch is GBs per copy: keep as few alive as possible
    # Exact copies and re-sent ids: keep the first occurrence in file order.
    unique = valid.filter(pl.col("transaction_id").is_first_distinct())
    duplicates = valid.height - unique.height
    del valid
    origin = config.origin_date or _infer_origin(unique)
    clean, repaired = _repair_time(unique, origin)
    del unique
    clean = clean.with_columns(
        customer_id=pseudonymizer.column(clean["customer_id"], "customer"),
        terminal_id=pseudonymizer.column(clean["terminal_id"], "terminal"),
        batch_id=pl.lit(batch_id),
    ).select(list(CLEAN_SCHEMA))
    if not clean["transaction_id"].is_sorted():  # exports are usually in id order already
        clean = clean.sort("transaction_id")
    return CleanResult(
        batch_id=batch_id,
        clean=clean.cast(CLEAN_SCHEMA),
        quarantine=quarantine.cast(QUARANTINE_SCHEMA),
        raw_rows=raw_rows,
        duplicates=duplicates,
        origin=origin,
        repaired=repaired,
    )


def _parse(lines: pl.LazyFrame, config: CleaningConfig) -> pl.LazyFrame:
    line = pl.col("line").str.strip_chars_end("\r")
    fields = [f"f{i}" for i in range(9)]
    split = lines.with_columns(
        commas=line.str.count_matches(",", literal=True),
        parts=line.str.split_exact(",", 8).struct.rename_fields(fields),
    ).unnest("parts")

    stamp = pl.col("f1")
    hour_24 = stamp.str.slice(11) == "24:00:00"
    typed = split.with_columns(
        transaction_id=pl.col("f0").cast(pl.Int64, strict=False),
        hour_24=hour_24.fill_null(False),
        tx_datetime=pl.when(hour_24)
        .then(
            stamp.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
            + pl.duration(days=1)
        )
        .otherwise(stamp.str.to_datetime(DATETIME_FORMAT, time_unit="us", strict=False)),
        customer_id=pl.col("f2").cast(pl.Int64, strict=False),
        terminal_id=pl.col("f3").cast(pl.Int64, strict=False),
        tx_amount=pl.col("f4").cast(pl.Float64, strict=False),
        tx_time_seconds=pl.col("f5").cast(pl.Int64, strict=False),
        tx_time_days=pl.col("f6").cast(pl.Int64, strict=False),
        tx_fraud=pl.col("f7").cast(pl.Int8, strict=False),
        tx_fraud_scenario=pl.col("f8").cast(pl.Int8, strict=False),
    )
    c = pl.col
    required = ["transaction_id", "tx_datetime", "tx_time_seconds", "tx_time_days"]
    reason = (
        pl.when(c("commas") != 8)
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(pl.any_horizontal(c(r).is_null() for r in required))
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(~c("tx_fraud").is_in([0, 1]).fill_null(False))
        .then(pl.lit(INVALID_LABEL))
        .when(~c("tx_fraud_scenario").is_between(0, 3).fill_null(False))
        .then(pl.lit(INVALID_LABEL))
        .when(c("f2") == "")
        .then(pl.lit(Defect.MISSING_CUSTOMER.value))
        .when(c("customer_id").is_null() | (c("customer_id") < 0))
        .then(pl.lit(Defect.BAD_CUSTOMER.value))
        .when(c("f3") == "")
        .then(pl.lit(Defect.EMPTY_TERMINAL.value))
        .when(c("terminal_id").is_null())
        .then(pl.lit(Defect.ERR_TERMINAL.value))
        .when((c("terminal_id") < 0) | (c("terminal_id") > config.max_terminal_id))
        .then(pl.lit(Defect.TERMINAL_OUT_OF_RANGE.value))
        .when(c("f4") == "")
        .then(pl.lit(Defect.MISSING_AMOUNT.value))
        .when(c("tx_amount").is_null() | c("tx_amount").is_nan() | c("tx_amount").is_infinite())
        .then(pl.lit(Defect.UNPARSEABLE.value))
        .when(c("tx_amount") <= 0)
        .then(pl.lit(Defect.NONPOSITIVE_AMOUNT.value))
        .otherwise(None)
        .alias("reason")
    )
    return typed.with_columns(reason).select(
        "line_no",
        "reason",
        # The text is kept only where it is needed: quarantined rows keep their original line.
        pl.when(pl.col("reason").is_not_null()).then(pl.col("line")).alias("line"),
        "hour_24",
        *COLUMNS,
    )


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
    ).drop("new_seconds", "new_days", "hour_24", "line", "reason", "line_no")
    return fixed, {k: int(v or 0) for k, v in counts.items()}
