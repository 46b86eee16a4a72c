"""Many reference-size daily batches through the Spark engine in one process: is the driver bounded?

Simulates the reference export (5 000 customers, 10 000 terminals) as daily batches, then runs
the `fraud features` code path (`batch.ranges.ingest_range`: raw check, clean, features) with the
Spark engine over all of them in one process, and prints after every batch the driver's resident
memory (Python process and driver JVM), then the JVM heap still in use after a full collection;
then a summary table (first and last batch, a few points between) and the second half's trend.

    .venv/bin/python benchmarks/bench_spark_batches.py --days 183 --master local[2]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument(
        "--chunk-batches", type=int, default=20, help="batches per features call (one chunk)"
    )
    args = parser.parse_args()

    from fraud_assets.batch.local import find_batches
    from fraud_assets.batch.ranges import RangeConfig, Step, ingest_range
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation
    from fraud_assets.spark.session import start_spark

    commit = subprocess.run(  # the code this run imported
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="bench-spark-batches-"))
    try:
        landing = work / "landing"
        params = SimulationParams(customers=5_000, terminals=10_000, days=args.days)
        write_simulation(params, *filesystem_for(str(landing)))
        spark = start_spark(
            args.master, {"spark.ui.enabled": "false", "spark.driver.memory": args.driver_memory}
        )
        jvm = spark.sparkContext._gateway.proc.pid  # noqa: SLF001 - the driver JVM
        source = find_batches([str(landing)])
        daily = max(source.row_estimate(b) for b in source.paths)
        config = RangeConfig(engine="spark", spark=spark, chunk_rows=daily * args.chunk_batches)
        samples: list[tuple[int, str, float, float, float, float]] = []
        started = time.perf_counter()
        runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()  # noqa: SLF001

        def sample(outcome) -> None:  # noqa: ANN001 - a BatchOutcome
            import os

            assert outcome.ok, (outcome.batch_id, outcome.error)
            python, java = rss_mb(os.getpid()), rss_mb(jvm)  # before the collection below
            spark.sparkContext._jvm.java.lang.System.gc()  # noqa: SLF001 - what is still held
            heap = (runtime.totalMemory() - runtime.freeMemory()) / 2**20
            samples.append(
                (len(samples) + 1, outcome.batch_id, time.perf_counter() - started)
                + (python, java, heap)
            )
            n, batch, t, py, jv, hp = samples[-1]
            print(
                f"batch {n} {batch} {t:,.0f} s: Python RSS {py:,.0f} MB, JVM RSS {jv:,.0f} MB, "
                f"JVM heap after GC {hp:,.0f} MB",
                flush=True,
            )

        outcomes = ingest_range(
            list(source.paths),
            {Step.RAW, Step.CLEAN, Step.FEATURES},
            source,
            Lake(*filesystem_for(str(work / "lake"))),
            Pseudonymizer(b"bench"),
            config,
            row_estimate=source.row_estimate,
            on_batch=sample,
        )
        elapsed = time.perf_counter() - started
        spark.stop()
        rows = sum(o.features.rows for o in outcomes)
        print(
            f"machine: {platform.machine()}, commit {commit}, master {args.master}, "
            f"driver memory {args.driver_memory}"
        )
        print(
            f"{len(outcomes)} batches, {rows:,} feature rows, {elapsed:,.0f} s "
            f"({rows / elapsed:,.0f} rows/s), chunks of {args.chunk_batches} batches"
        )
        print(
            "| batch # | batch | s since start | driver Python RSS MB | driver JVM RSS MB "
            "| JVM heap after GC MB |"
        )
        print("|---:|---|---:|---:|---:|---:|")
        step = max(1, len(samples) // 6)
        shown = sorted({0, *range(0, len(samples), step), len(samples) - 1})
        for i in shown:
            n, batch, t, py, jv, hp = samples[i]
            print(f"| {n} | {batch} | {t:,.0f} | {py:,.0f} | {jv:,.0f} | {hp:,.0f} |")
        half = samples[len(samples) // 2 :]
        for name, k in (("Python RSS", 3), ("JVM RSS", 4), ("JVM heap after GC", 5)):
            values = [s[k] for s in half]
            slope = _slope([s[0] for s in half], values)
            print(
                f"second half ({len(half)} batches), {name}: min {min(values):,.0f} MB, "
                f"max {max(values):,.0f} MB, trend {slope * 100:+,.1f} MB per 100 batches"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
