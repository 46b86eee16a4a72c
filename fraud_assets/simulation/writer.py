"""Write simulated days as raw batch files (one per day) plus their completion markers."""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from fsspec import AbstractFileSystem

from fraud_assets.cleaning.terminal_registry import write_terminals_csv
from fraud_assets.lake.filesystems import join
from fraud_assets.rawdata.format import (
    COLUMNS,
    DATETIME_FORMAT,
    HEADER_LINE,
    TERMINALS_FILE,
    BatchMarker,
    data_name,
    manifest_name,
    marker_name,
)
from fraud_assets.simulation.dirty import damage
from fraud_assets.simulation.generator import SimulatedDay, TransactionSimulator
from fraud_assets.simulation.params import SimulationParams


@dataclass
class SimulationSummary:
    batches: list[str] = field(default_factory=list)
    transactions: int = 0
    rows_written: int = 0  # differs from transactions when --dirty adds duplicates
    frauds_by_scenario: Counter[int] = field(default_factory=Counter)
    defects: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def frauds(self) -> int:
        return sum(self.frauds_by_scenario.values())

    @property
    def rows_per_second(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def encode_rows(frame: pl.DataFrame) -> bytes:
    """The raw data lines of a frame, without header: comma-separated, no quoting, 2-dp amounts."""
    buf = io.BytesIO()
    # Decimal(12, 2) prints exactly two decimals, several times faster than float formatting.
    frame.select(COLUMNS).with_columns(pl.col("tx_amount").cast(pl.Decimal(12, 2))).write_csv(
        buf,
        include_header=False,
        datetime_format=DATETIME_FORMAT,
        quote_style="never",
        batch_size=1 << 16,
    )
    return buf.getvalue()


@dataclass(frozen=True)
class _WrittenBatch:
    batch_id: str
    transactions: int
    rows: int
    bytes: int
    frauds_by_scenario: dict[int, int]
    defects: list[str]


# Polars encodes one large frame about twice as fast as many small ones, so small days are
# encoded in groups of at least this many rows and the bytes split back into per-day files.
GROUP_ROWS = 1 << 16


def write_simulation(
    params: SimulationParams,
    fs: AbstractFileSystem,
    root: str,
    dirty_rate: float = 0.0,
    on_batch: Callable[[str, int], None] | None = None,
) -> SimulationSummary:
    """Generate and write every day; `on_batch(batch_id, transactions)` reports progress.

    Generation (numpy) runs here while two threads encode and write earlier groups of days
    (Polars releases the GIL, so all cores work). At most three groups are in flight, so memory
    does not grow with the number of days. Results are recorded in day order.
    """
    fs.makedirs(root, exist_ok=True)
    summary = SimulationSummary()
    started = time.perf_counter()
    # The bank's terminal master data comes with the batches: every terminal of the simulation.
    with fs.open(join(root, TERMINALS_FILE), "wb") as f:
        f.write(write_terminals_csv(np.arange(params.terminals)))

    def record(written: list[_WrittenBatch]) -> None:
        for batch in written:
            summary.batches.append(batch.batch_id)
            summary.transactions += batch.transactions
            summary.rows_written += batch.rows
            summary.bytes_written += batch.bytes
            summary.frauds_by_scenario.update(batch.frauds_by_scenario)
            summary.defects.update(batch.defects)
            if on_batch is not None:
                on_batch(batch.batch_id, batch.transactions)

    with ThreadPoolExecutor(max_workers=2) as writer:
        in_flight: deque[Future[list[_WrittenBatch]]] = deque()
        group: list[SimulatedDay] = []
        for day in TransactionSimulator(params).days():
            group.append(day)
            if sum(d.frame.height for d in group) < GROUP_ROWS and day.day < params.days - 1:
                continue
            in_flight.append(writer.submit(_write_days, group, params, fs, root, dirty_rate))
            group = []
            if len(in_flight) >= 3:
                record(in_flight.popleft().result())
        while in_flight:
            record(in_flight.popleft().result())
    summary.seconds = time.perf_counter() - started
    return summary


def _write_days(
    days: list[SimulatedDay],
    params: SimulationParams,
    fs: AbstractFileSystem,
    root: str,
    dirty_rate: float,
) -> list[_WrittenBatch]:
    body = encode_rows(pl.concat([d.frame for d in days]))
    newline_at = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    written, start, rows_before = [], 0, 0
    for day in days:
        rows_before += day.frame.height
        end = int(newline_at[rows_before - 1]) + 1 if rows_before else 0
        written.append(_write_day(day, body[start:end], params, fs, root, dirty_rate))
        start = end
    return written


def _write_day(
    day: SimulatedDay,
    body: bytes,
    params: SimulationParams,
    fs: AbstractFileSystem,
    root: str,
    dirty_rate: float,
) -> _WrittenBatch:
    batch_id = day.date.isoformat()
    rows = day.frame.height
    defects: list[str] = []
    if dirty_rate > 0:
        # Damage draws from its own stream, so a dirty run is the clean run plus damage.
        rng = np.random.default_rng([params.seed, day.day, 13])
        lines = body.decode().splitlines()
        damaged = damage(lines, dirty_rate, rng, batch_id, params.terminals)
        body = ("\n".join(damaged.lines) + "\n").encode() if damaged.lines else b""
        rows = len(damaged.lines)
        with fs.open(join(root, manifest_name(batch_id)), "wb") as f:
            damaged.manifest.write_csv(f)
        defects = damaged.manifest["defect"].to_list()
    content = HEADER_LINE + body
    with fs.open(join(root, data_name(batch_id)), "wb") as f:
        f.write(content)
    marker = BatchMarker(
        batch_id=batch_id,
        rows=rows,
        bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        origin_date=params.origin.isoformat(),
        first_date=batch_id,
        last_date=batch_id,
    )
    # The marker goes last: its presence is the promise that the data file is complete.
    with fs.open(join(root, marker_name(batch_id)), "w") as f:
        f.write(marker.to_json())
    scenarios = day.frame.filter(pl.col("tx_fraud_scenario") > 0)["tx_fraud_scenario"]
    return _WrittenBatch(
        batch_id=batch_id,
        transactions=day.frame.height,
        rows=rows,
        bytes=len(content),
        frauds_by_scenario={int(k): int(v) for k, v in scenarios.value_counts().iter_rows()},
        defects=defects,
    )
