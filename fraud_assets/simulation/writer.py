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

from fraud_assets.filesystems import join
from fraud_assets.raw_format import (
    COLUMNS,
    DATETIME_FORMAT,
    HEADER_LINE,
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


def write_simulation(
    params: SimulationParams,
    fs: AbstractFileSystem,
    root: str,
    dirty_rate: float = 0.0,
    on_batch: Callable[[str, int], None] | None = None,
) -> SimulationSummary:
    """Generate and write every day; `on_batch(batch_id, transactions)` reports progress.

    Generation (numpy) runs here while two threads encode and write earlier days (Polars releases
    the GIL, so all cores work); at most three days are in flight, so memory does not grow with
    the number of days. Results are recorded in day order.
    """
    fs.makedirs(root, exist_ok=True)
    summary = SimulationSummary()
    started = time.perf_counter()

    def record(written: _WrittenBatch) -> None:
        summary.batches.append(written.batch_id)
        summary.transactions += written.transactions
        summary.rows_written += written.rows
        summary.bytes_written += written.bytes
        summary.frauds_by_scenario.update(written.frauds_by_scenario)
        summary.defects.update(written.defects)
        if on_batch is not None:
            on_batch(written.batch_id, written.transactions)

    with ThreadPoolExecutor(max_workers=2) as writer:
        in_flight: deque[Future[_WrittenBatch]] = deque()
        for day in TransactionSimulator(params).days():
            in_flight.append(writer.submit(_write_day, day, params, fs, root, dirty_rate))
            if len(in_flight) >= 3:
                record(in_flight.popleft().result())
        while in_flight:
            record(in_flight.popleft().result())
    summary.seconds = time.perf_counter() - started
    return summary


def _write_day(
    day: SimulatedDay,
    params: SimulationParams,
    fs: AbstractFileSystem,
    root: str,
    dirty_rate: float,
) -> _WrittenBatch:
    batch_id = day.date.isoformat()
    body = encode_rows(day.frame)
    rows = body.count(b"\n")
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
