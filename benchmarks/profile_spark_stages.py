"""Where the Spark engine's time goes on one batch: Spark's stage times from its event log.

Cleans and featurises the cached bench batch (`bench_features.py`'s sizes) on Spark with the
event log on, as `bench_features.py`'s Spark run does, then prints every job with its stages:
wall time, tasks, the tasks' summed run time and JVM CPU time (Python workers' CPU is not in
Spark's CPU figure; it shows as run time). A profile, not a throughput figure: one run, no
median.

    .venv/bin/python benchmarks/profile_spark_stages.py --size reference
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _events(folder: Path) -> list[dict]:
    """The event log's records (Spark 4 writes a rolling, zstd-compressed log by default)."""
    (app,) = list(folder.iterdir())
    files = sorted(app.glob("events_*")) if app.is_dir() else [app]
    out = []
    for f in files:
        data = (
            subprocess.run(["zstd", "-dc", str(f)], capture_output=True, check=True).stdout
            if f.suffix == ".zstd"
            else f.read_bytes()
        )
        out += [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    return out


def report(events: list[dict]) -> None:
    jobs: dict[int, dict] = {}
    stages: dict[int, dict] = {}
    for e in events:
        kind = e["Event"]
        if kind == "SparkListenerJobStart":
            site = e.get("Properties", {}).get("callSite.short", "")
            jobs[e["Job ID"]] = {
                "start": e["Submission Time"],
                "stages": e["Stage IDs"],
                "site": site,
            }
        elif kind == "SparkListenerJobEnd":
            jobs[e["Job ID"]]["end"] = e["Completion Time"]
        elif kind == "SparkListenerStageCompleted":
            info = e["Stage Info"]
            stage = stages.setdefault(info["Stage ID"], {"run": 0.0, "cpu": 0.0})
            stage["wall"] = (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1e3
            stage["tasks"] = info["Number of Tasks"]
        elif kind == "SparkListenerTaskEnd":
            metrics = e.get("Task Metrics") or {}
            stage = stages.setdefault(e["Stage ID"], {"run": 0.0, "cpu": 0.0})
            stage["run"] += metrics.get("Executor Run Time", 0) / 1e3
            stage["cpu"] += metrics.get("Executor CPU Time", 0) / 1e9
    print("| job | called at | stage | wall s | tasks | task run s | JVM CPU s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    total_wall = total_cpu = 0.0
    for job_id, job in sorted(jobs.items()):
        site = job["site"].rsplit("/", 1)[-1]
        for sid in job["stages"]:
            s = stages.get(sid)
            if s is None or "wall" not in s:
                continue  # skipped: its output was already there
            total_wall += s["wall"]
            total_cpu += s["cpu"]
            print(
                f"| {job_id} | {site} | {sid} | {s['wall']:.2f} | {s['tasks']} | "
                f"{s['run']:.2f} | {s['cpu']:.2f} |"
            )
    print(f"stages: {total_wall:.1f} s of wall time, {total_cpu:.1f} s of JVM CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="reference")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from bench_features import BATCH_ID, build_batch

    from fraud_assets.batch.spark_clean import clean_batch_spark, first_line
    from fraud_assets.batch.spark_features import features_into_lake_spark
    from fraud_assets.batch.spark_warm_up import warm_up
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.privacy import Pseudonymizer
    from fraud_assets.spark.session import start_spark

    source = build_batch(args.size)
    work = Path(tempfile.mkdtemp(prefix="profile-spark-"))
    try:
        (work / "events").mkdir()
        spark = start_spark(
            args.master,
            {
                "spark.ui.enabled": "false",
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": (work / "events").as_uri(),
            },
        )
        lake = Lake(*filesystem_for(str(work / "lake")))
        config = CleaningConfig(origin_date=dt.date(2018, 4, 1))
        with open(source, "rb") as f:
            header = first_line(f)
        warmup = warm_up(spark)  # job 0: the executors' Python workers started, engines imported
        print(f"warm-up {warmup:.1f} s")
        started = time.perf_counter()
        result = clean_batch_spark(
            spark,
            lake,
            source.resolve().as_uri(),
            header,
            BATCH_ID,
            Pseudonymizer(b"bench"),
            config,
        )
        cleaned = time.perf_counter()
        features = features_into_lake_spark(spark, lake, [BATCH_ID], lake.coverage())[BATCH_ID]
        done = time.perf_counter()
        spark.stop()
        print(
            f"{result.raw_rows:,} rows: clean {cleaned - started:.1f} s, features "
            f"{done - cleaned:.1f} s ({features.rows:,} rows), "
            f"{result.raw_rows / (done - started):,.0f} rows/s"
        )
        report(_events(work / "events"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
