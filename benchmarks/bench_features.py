"""Clean + features throughput per engine, on one large raw batch, with peak memory.

A batch of N rows is built once from simulator days concatenated into one file (like the bank's
monthly export) and cached under benchmarks/out/. Each run is its own process, so its peak RSS
is its own; a row reports the median run of `--repeat` and the highest peak RSS.

    .venv/bin/python benchmarks/bench_features.py --sizes reference 10M 47M --engines polars spark
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
SIZES = {
    # customers, terminals, days: ≈ rows
    "reference": dict(customers=5_000, terminals=10_000, days=183),  # ≈ 1.79 M
    "10M": dict(customers=50_000, terminals=10_000, days=103),  # ≈ 9.95 M
    "47M": dict(customers=100_000, terminals=10_000, days=243),  # ≈ 47 M, ≈ 2.6 GB
}
BATCH_ID = "2030-01-01"


def build_batch(size: str) -> Path:
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.rawdata.format import HEADER_LINE
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation

    target = OUT / size / f"{BATCH_ID}.txt"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    days = Path(tempfile.mkdtemp(prefix="bench-days-"))
    try:
        write_simulation(SimulationParams(**SIZES[size]), *filesystem_for(str(days)))
        with open(target, "wb") as out:
            out.write(HEADER_LINE)
            for day in sorted(days.glob("*.txt")):
                with open(day, "rb") as f:
                    f.readline()
                    shutil.copyfileobj(f, out, 16 << 20)
    finally:
        shutil.rmtree(days, ignore_errors=True)
    return target


def measure(size: str, engine: str, lake_dir: str) -> dict:
    import datetime as dt

    from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer

    source = build_batch(size)
    spark = None
    if engine == "spark":
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "8g")
            .config("spark.driver.maxResultSize", "0")
            .getOrCreate()
        )
    lake = Lake(*filesystem_for(lake_dir))
    config = CleaningConfig(origin_date=dt.date(2018, 4, 1))
    started = time.perf_counter()
    result = clean_into_lake(lake, str(source), BATCH_ID, Pseudonymizer(b"bench"), config)
    cleaned = time.perf_counter()
    # As `fraud features` does: the clean table just written is featurised from memory.
    features = features_into_lake(lake, BATCH_ID, engine, spark, batch_clean=result.clean)
    done = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "rows": result.raw_rows,
        "features": features.height,
        "clean_s": cleaned - started,
        "features_s": done - cleaned,
        "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["reference", "10M"], choices=list(SIZES))
    parser.add_argument("--engines", nargs="+", default=["polars"], choices=["polars", "spark"])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row (own process each); the median counts"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "| batch | engine | rows | clean s | features s | rows/s, median (each run) | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    # Each run writes a fresh lake; they are all removed at the end, not between runs: ext4 is
    # slow to allocate inodes right after many were deleted, which no real lake sees every second.
    lakes = tempfile.mkdtemp(prefix="bench-lakes-")
    try:
        _run_all(args, lakes)
    finally:
        shutil.rmtree(lakes, ignore_errors=True)


def _run_all(args: argparse.Namespace, lakes: str) -> None:
    for size in args.sizes:
        build_batch(size)
        for engine in args.engines:
            runs = []
            for _ in range(args.repeat):
                lake = tempfile.mkdtemp(prefix="lake-", dir=lakes)
                child = subprocess.run(
                    [sys.executable, __file__, "--child", size, engine, lake],
                    capture_output=True,
                    text=True,
                )
                if child.returncode != 0:
                    tail = "\n".join(child.stderr.strip().splitlines()[-5:])
                    print(f"| {size} | {engine} | failed: {tail} |", flush=True)
                    break
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            if not runs:
                continue
            for r in runs:
                r["rate"] = r["rows"] / (r["clean_s"] + r["features_s"])
            r = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]  # the median run
            each = ", ".join(f"{x['rate'] / 1e3:,.0f} k" for x in runs)
            print(
                f"| {size} | {engine} | {r['rows']:,} | {r['clean_s']:.2f} | "
                f"{r['features_s']:.2f} | {r['rate']:,.0f} ({each}) | "
                f"{max(x['peak_rss_mb'] for x in runs):,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
