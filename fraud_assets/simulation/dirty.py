"""Damage a clean batch with every defect class (docs/raw-batches.md), recording what was done.

The manifest is the ground truth the cleaning tests are matched against: one row per damaged line,
with the line as written and, for repairable defects, the line cleaning must restore.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.rawdata.defects import REPAIRABLE, Defect
from fraud_assets.rawdata.format import DATETIME_FORMAT

SECONDS_PER_DAY = 86_400
FIRST_DATA_LINE = 2  # line 1 is the header


MANIFEST_SCHEMA = {
    "batch_id": pl.String,
    "line_no": pl.Int64,
    "transaction_id": pl.Int64,
    "defect": pl.String,
    "written_line": pl.String,
    "expected_line": pl.String,  # what cleaning must restore; empty when the line must not survive
}

# Field positions in a raw line.
_ID, _DT, _CUST, _TERM, _AMOUNT, _SECS, _DAYS = range(7)


@dataclass(frozen=True)
class DamagedBatch:
    lines: list[str]  # data lines, without the header, in file order
    manifest: pl.DataFrame


def damaged_row_count(rows: int, rate: float) -> int:
    """At least one row per class when the batch is big enough, so every class shows up."""
    if rate <= 0 or rows == 0:
        return 0
    return min(max(len(Defect), round(rate * rows)), rows // 2)


def damage(
    lines: list[str], rate: float, rng: np.random.Generator, batch_id: str, terminals: int
) -> DamagedBatch:
    n_damaged = damaged_row_count(len(lines), rate)
    rows = rng.choice(len(lines), n_damaged, replace=False)
    classes = list(Defect)
    defect_of = {int(r): classes[i % len(classes)] for i, r in enumerate(rng.permutation(rows))}

    out: list[str] = []
    records: list[tuple[int, int, str, str, str]] = []
    for i, line in enumerate(lines):
        defect = defect_of.get(i)
        if defect is None:
            out.append(line)
            continue
        tx_id = int(line.split(",", 1)[0])
        if defect is Defect.DUPLICATE:
            out.append(line)
            out.append(line)
            records.append((len(out) - 1 + FIRST_DATA_LINE, tx_id, defect, line, ""))
            continue
        written, expected = _apply(defect, line, rng, terminals)
        out.append(written)
        records.append((len(out) - 1 + FIRST_DATA_LINE, tx_id, defect, written, expected))

    manifest = pl.DataFrame(
        [(batch_id, *r) for r in records], schema=MANIFEST_SCHEMA, orient="row"
    ).sort("line_no")
    return DamagedBatch(out, manifest)


def _apply(defect: Defect, line: str, rng: np.random.Generator, terminals: int) -> tuple[str, str]:
    """Return (written line, line cleaning must restore or '' when it must be quarantined)."""
    f = line.split(",")
    if defect is Defect.HOUR_24:
        # The transaction happened at midnight ending its day; the export wrote hour 24 and kept
        # the day count of the day before.
        stamp = dt.datetime.strptime(f[_DT], DATETIME_FORMAT)
        midnight = dt.datetime.combine(stamp.date() + dt.timedelta(days=1), dt.time())
        secs = int(f[_SECS]) - (stamp - dt.datetime.combine(stamp.date(), dt.time())).seconds
        secs += SECONDS_PER_DAY
        expected = f.copy()
        expected[_DT] = midnight.strftime(DATETIME_FORMAT)
        expected[_SECS] = str(secs)
        expected[_DAYS] = str(secs // SECONDS_PER_DAY)
        written = expected.copy()
        written[_DT] = f"{stamp.date().isoformat()} 24:00:00"
        written[_DAYS] = str(secs // SECONDS_PER_DAY - 1)
        return ",".join(written), ",".join(expected)
    if defect in REPAIRABLE:
        written = f.copy()
        if defect is Defect.WRONG_SECONDS:
            written[_SECS] = str(int(f[_SECS]) + int(rng.integers(1, 400)) * SECONDS_PER_DAY)
        else:  # DAYS_TOO_SMALL
            written[_DAYS] = str(int(f[_DAYS]) - int(rng.integers(1, 4)))
        return ",".join(written), line
    written = f.copy()
    if defect is Defect.EMPTY_TERMINAL:
        written[_TERM] = ""
    elif defect is Defect.ERR_TERMINAL:
        written[_TERM] = "Err"
    elif defect is Defect.TERMINAL_OUT_OF_RANGE:
        written[_TERM] = str(int(rng.integers(max(terminals, 10_000_000), 100_000_000)))
    elif defect is Defect.BAD_CUSTOMER:
        written[_CUST] = "-999999"
    elif defect is Defect.NONPOSITIVE_AMOUNT:
        written[_AMOUNT] = f"{-float(rng.integers(0, 10_000)) / 100:.2f}".replace("-0.00", "0.00")
    elif defect is Defect.MISSING_CUSTOMER:
        written[_CUST] = ""
    elif defect is Defect.MISSING_AMOUNT:
        written[_AMOUNT] = ""
    elif defect is Defect.UNPARSEABLE:
        return _garble(line, rng), ""
    return ",".join(written), ""


def _garble(line: str, rng: np.random.Generator) -> str:
    """Lines seen in broken exports: cut short, wrong separator, or a stray extra field."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return line[: int(rng.integers(1, line.rfind(",", 0, line.rfind(","))))]
    if kind == 1:
        return line.replace(",", ";")
    return line + ",#"
