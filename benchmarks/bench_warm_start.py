"""Warm-start time of the scoring service's online state, in process and in Redis.

A lake of --days simulated days (reference size by default: 5,000 cards, 10,000 terminals) is
built once under --workdir (simulate, clean each day into the lake). Then, --repeat times each:

- in-process: `online_state.publish.warm_start` into a fresh `InMemoryFeatureStore`, exactly what
  `fraud serve` does at start (the newest 69 days of the clean table);
- Redis: `online_state.publish.publish_batches` of the same batches into a `RedisFeatureStore`
  under a fresh key prefix on --redis-url (what the `online_feature_state` asset does), the
  prefix deleted afterwards.

Reported: rows loaded, seconds (median and each run), rows/s, and the process's peak RSS.

    .venv/bin/python benchmarks/bench_warm_start.py                  # reference size, 45 days
    .venv/bin/python benchmarks/bench_warm_start.py --customers 300 --terminals 400 --days 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraud_assets.batch.pipeline import clean_into_lake  # noqa: E402
from fraud_assets.cleaning import CleaningConfig  # noqa: E402
from fraud_assets.lake import Lake  # noqa: E402
from fraud_assets.lake.filesystems import filesystem_for  # noqa: E402
from fraud_assets.online_state.publish import (  # noqa: E402
    newest_batches,
    publish_batches,
    warm_start,
)
from fraud_assets.privacy import Pseudonymizer  # noqa: E402
from fraud_assets.serving.online_features import (  # noqa: E402
    InMemoryFeatureStore,
    RedisFeatureStore,
)
from fraud_assets.simulation import SimulationParams  # noqa: E402
from fraud_assets.simulation.writer import write_simulation  # noqa: E402

START = dt.date(2018, 4, 1)


def build_lake(root: Path, customers: int, terminals: int, days: int) -> Lake:
    lake = Lake(*filesystem_for(str(root / "lake")))
    if lake.coverage():
        print(f"reusing the lake at {root / 'lake'}")
        return lake
    started = time.perf_counter()
    params = SimulationParams(
        customers=customers, terminals=terminals, days=days, start_date=START, seed=7
    )
    summary = write_simulation(params, *filesystem_for(str(root / "landing")))
    config = CleaningConfig(origin_date=START)
    pseudonymizer = Pseudonymizer(b"bench-key")
    for batch in summary.batches:
        clean_into_lake(lake, root / "landing" / f"{batch}.txt", batch, pseudonymizer, config)
    print(f"lake of {days} days built in {time.perf_counter() - started:.0f} s")
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the lake here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-warm-start-"))
    lake = build_lake(workdir, args.customers, args.terminals, args.days)
    url = str(workdir / "lake")
    batches = newest_batches(lake)

    results: dict[str, tuple[int, list[float]]] = {}
    runs = []
    for _ in range(args.repeat):
        store = InMemoryFeatureStore()
        loaded = warm_start(store, url, emit=lambda line: None)
        assert loaded is not None
        runs.append(loaded.seconds)
    results["in-process (warm start)"] = (loaded.rows, runs)

    import redis

    client = redis.Redis.from_url(args.redis_url, socket_timeout=30)
    runs = []
    for _ in range(args.repeat):
        store = RedisFeatureStore(client, prefix=f"bench-warm:{uuid.uuid4().hex}:")
        try:
            published = publish_batches(store, lake, batches)
        finally:
            store.clear()
        runs.append(published.seconds)
    results["redis (publish_batches)"] = (published.rows, runs)

    print(
        f"\n{platform.node()} ({platform.processor() or platform.machine()}), "
        f"{args.customers:,} cards, {args.terminals:,} terminals, {args.days} days simulated; "
        f"state = newest {len(batches)} batches"
    )
    print("| store | rows | median s | runs (s) | rows/s |")
    print("|---|---:|---:|---|---:|")
    for name, (rows, seconds) in results.items():
        median = statistics.median(seconds)
        each = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {name} | {rows:,} | {median:.2f} | {each} | {rows / median:,.0f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
