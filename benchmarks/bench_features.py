"""Clean + features throughput per engine, on one large raw batch, with peak memory.

A batch of N rows is built once from simulator days concatenated into one file (like the bank's
monthly export) and cached under benchmarks/out/. Each run is its own process, so its peak RSS
is its own; a row reports the median run of `--repeat` and the highest peak RSS.

    .venv/bin/python benchmarks/bench_features.py --sizes reference 10M 47M --engines polars spark

`--engines spark` runs Spark twice: on `local[2]` and on a standalone cluster of two one-core
workers started on loopback for the run (fraud_assets/dev/spark_cluster.py). Spark cleans and
featurises on its executors, which read the raw file and write the lake; the driver's peak
memory is reported apart (Python driver + driver JVM; in `local[2]` the JVM also runs the
executors). `--driver-memory 1g` caps the driver JVM (the 47 M-row proof that nothing is
collected).
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
    if engine.startswith("spark"):
        return measure_spark(source, engine, lake_dir)
    spark = None
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


def measure_spark(source: Path, engine: str, lake_dir: str) -> dict:
    """Clean + features on Spark (`engine`: spark-local or spark-cluster=<master URL>)."""
    import datetime as dt

    from fraud_assets.batch.spark_clean import clean_batch_spark, first_line
    from fraud_assets.batch.spark_features import features_into_lake_spark
    from fraud_assets.batch.spark_warm_up import warm_up
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer
    from fraud_assets.spark.session import start_spark

    master = engine.split("=", 1)[1] if "=" in engine else "local[2]"
    extra = {"spark.ui.enabled": "false", "spark.driver.memory": DRIVER_MEMORY}
    if master.startswith("spark://"):
        extra |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.executor.memory": EXECUTOR_MEMORY,
        }
    spark = start_spark(master, extra)
    jvm = spark.sparkContext._gateway.proc.pid  # noqa: SLF001 - the driver JVM we started
    lake = Lake(*filesystem_for(lake_dir))
    config = CleaningConfig(origin_date=dt.date(2018, 4, 1))
    with open(source, "rb") as f:
        header = first_line(f)
    # The executors' Python workers started and the engines imported, once per session (the
    # Polars run imports its engine before timing too); reported apart as `warmup_s`.
    warmup = warm_up(spark)
    started = time.perf_counter()
    result = clean_batch_spark(
        spark, lake, source.resolve().as_uri(), header, BATCH_ID, Pseudonymizer(b"bench"), config
    )
    cleaned = time.perf_counter()
    features = features_into_lake_spark(spark, lake, [BATCH_ID], lake.coverage())[BATCH_ID]
    done = time.perf_counter()
    jvm_peak = _peak_kb(jvm)
    spark.stop()
    assert result.conserved and features.rows == result.clean_rows
    python_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": result.raw_rows,
        "features": features.rows,
        "clean_s": cleaned - started,
        "features_s": done - cleaned,
        "warmup_s": warmup,
        "peak_rss_mb": (python_peak + jvm_peak) / 1024,
        "driver_python_mb": python_peak / 1024,
        "driver_jvm_mb": jvm_peak / 1024,
    }


def _peak_kb(pid: int) -> int:
    """A process's peak resident set (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


DRIVER_MEMORY = os.environ.get("BENCH_SPARK_DRIVER_MEMORY", "1g")
EXECUTOR_MEMORY = "1g"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["reference", "10M"], choices=list(SIZES))
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["polars"],
        choices=["polars", "spark", "spark-local", "spark-cluster"],
        help="spark = spark-local (local[2]) and spark-cluster (2 workers on loopback)",
    )
    parser.add_argument(
        "--driver-memory", default="1g", help="spark.driver.memory of the Spark runs"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row (own process each); the median counts"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_SPARK_DRIVER_MEMORY"] = args.driver_memory
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


def _engines(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        out += ["spark-local", "spark-cluster"] if name == "spark" else [name]
    return list(dict.fromkeys(out))


def _run_all(args: argparse.Namespace, lakes: str) -> None:
    from contextlib import ExitStack

    from fraud_assets.dev.spark_cluster import standalone_cluster

    engines = _engines(args.engines)
    with ExitStack() as stack:
        if "spark-cluster" in engines:
            cluster = stack.enter_context(standalone_cluster(Path(lakes) / "cluster"))
            engines = [
                f"spark-cluster={cluster.url}" if e == "spark-cluster" else e for e in engines
            ]
        _run_sizes(args, lakes, engines)


def _run_sizes(args: argparse.Namespace, lakes: str, engines: list[str]) -> None:
    for size in args.sizes:
        build_batch(size)
        for engine in engines:
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
                    print(f"| {size} | {_label(engine)} | failed: {tail} |", flush=True)
                    break
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            if not runs:
                continue
            for r in runs:
                r["rate"] = r["rows"] / (r["clean_s"] + r["features_s"])
            r = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]  # the median run
            each = ", ".join(f"{x['rate'] / 1e3:,.0f} k" for x in runs)
            peak = f"{max(x['peak_rss_mb'] for x in runs):,.0f}"
            if "warmup_s" in r:  # Spark: the session's Python workers started before timing
                peak += f"; warm-up {r['warmup_s']:.1f} s"
            if "driver_jvm_mb" in r:
                peak += (
                    f" (driver: Python {max(x['driver_python_mb'] for x in runs):,.0f}"
                    f" + JVM {max(x['driver_jvm_mb'] for x in runs):,.0f})"
                )
            print(
                f"| {size} | {_label(engine)} | {r['rows']:,} | {r['clean_s']:.2f} | "
                f"{r['features_s']:.2f} | {r['rate']:,.0f} ({each}) | {peak} |",
                flush=True,
            )


def _label(engine: str) -> str:
    if engine == "spark-local":
        return f"spark `local[2]` (driver {os.environ['BENCH_SPARK_DRIVER_MEMORY']})"
    if engine.startswith("spark-cluster"):
        return "spark standalone, 2 workers × 1 core"
    return engine


if __name__ == "__main__":
    main()
