"""Simulator throughput: generate + write the raw format, end to end, with peak memory.

Each configuration runs in its own process (so peak RSS is its own) and writes into a fresh
temporary folder; the median of --repeat runs is reported.

    .venv/bin/python benchmarks/bench_simulator.py [--repeat 3] [--only reference]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

CONFIGS = {
    # The reference run of docs/simulator.md: ≈ 1.75 M transactions.
    "reference": dict(customers=5_000, terminals=10_000, days=183),
    # Twice the days: peak memory should not move (generation streams day by day).
    "reference x2 days": dict(customers=5_000, terminals=10_000, days=366),
    # ≈ 10 M transactions: 50 000 customers for 103 days.
    "10M": dict(customers=50_000, terminals=10_000, days=103),
}


def run_one(config: dict) -> dict:
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.simulation import SimulationParams
    from fraud_assets.simulation.writer import write_simulation

    out = tempfile.mkdtemp(prefix="bench-sim-")
    try:
        summary = write_simulation(SimulationParams(**config), *filesystem_for(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "transactions": summary.transactions,
        "seconds": summary.seconds,
        "bytes": summary.bytes_written,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(CONFIGS[args.child])))
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| run | transactions | median s | tx/s (median) | MB/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.only or list(CONFIGS):
        results = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in results)
        tx = results[0]["transactions"]
        peak = max(r["peak_rss_mb"] for r in results)
        print(
            f"| {name} | {tx:,} | {seconds:.2f} | {tx / seconds:,.0f} | "
            f"{results[0]['bytes'] / seconds / 1e6:.0f} | {peak:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
