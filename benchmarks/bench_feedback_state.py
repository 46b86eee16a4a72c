"""What the feedback features add to a single-transaction feature call, by where their state
lives, in one session.

A Redis online store (database 3, keys under a fresh `bench19b:<uuid>:` prefix, deleted at the
end) is filled with --warm transactions in order; --labels of them are labelled (a third
fraud) through `Scorer.feedback`; then --calls more transactions are computed one call at a
time with `Scorer.features_many` (what a single /v1/features or /v1/score request does before
the model), for each variant in turn:

    none         no feedback state (the store's own script only)
    in-process   FeedbackState (the dev / in-process mode)
    redis        RedisFeedbackState (shared by every process; one more pipelined round trip)

Prints mean, p50 and p99 microseconds per call per variant.

    .venv/bin/python benchmarks/bench_feedback_state.py                      # defaults
    .venv/bin/python benchmarks/bench_feedback_state.py --calls 1000 --warm 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from fraud_assets.privacy import Pseudonymizer  # noqa: E402
from fraud_assets.serving.feedback_state import FeedbackState, RedisFeedbackState  # noqa: E402
from fraud_assets.serving.model_source import ModelSource  # noqa: E402
from fraud_assets.serving.online_features import RedisFeatureStore  # noqa: E402
from fraud_assets.serving.scoring import Scorer  # noqa: E402

ORIGIN = dt.datetime(2018, 4, 1)
URL = "redis://127.0.0.1:6379/3"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=2000)
    ap.add_argument("--terminals", type=int, default=4000)
    ap.add_argument("--warm", type=int, default=20_000)
    ap.add_argument("--labels", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    rng = random.Random(19)
    client = redis.Redis.from_url(URL)
    prefix = f"bench19b:{uuid.uuid4().hex}:"
    store = RedisFeatureStore(client, prefix=prefix)
    states = {
        "none": None,
        "in-process": FeedbackState(),
        "redis": RedisFeedbackState(client, prefix=prefix),
    }
    source = ModelSource(registry=None)
    key = Pseudonymizer(b"bench")
    t = 0

    def tx(i: int) -> dict:
        nonlocal t
        t += rng.randint(1, 40)
        when = ORIGIN + dt.timedelta(days=10, seconds=t)
        return {"transaction_id": i, "tx_datetime": when.isoformat(sep=" "),
                "customer_id": rng.randrange(args.cards),
                "terminal_id": rng.randrange(args.terminals),
                "tx_amount": round(rng.uniform(1, 200), 2)}  # fmt: skip

    try:
        plain = Scorer(store, source, pseudonymizer=key, origin=ORIGIN)
        warm = [tx(i) for i in range(args.warm)]
        for start in range(0, len(warm), 500):
            plain.features_many(warm[start : start + 500])
        labelled = rng.sample(range(args.warm), args.labels)
        for state in states.values():
            if state is None:
                continue
            labeller = Scorer(store, source, pseudonymizer=key, origin=ORIGIN,
                              feedback_state=state)  # fmt: skip
            for i in labelled:
                labeller.feedback(transaction_id=i, fraud=i % 3 == 0)
        results = {}
        next_id = args.warm
        for variant, state in states.items():
            scorer = Scorer(store, source, pseudonymizer=key, origin=ORIGIN,
                            feedback_state=state)  # fmt: skip
            times = []
            for _ in range(args.calls):
                one = [tx(next_id)]
                next_id += 1
                began = time.perf_counter()
                scorer.features_many(one)
                times.append((time.perf_counter() - began) * 1e6)
            times.sort()
            results[variant] = (
                statistics.fmean(times),
                times[len(times) // 2],
                times[int(len(times) * 0.99)],
            )
    finally:
        for k in client.scan_iter(match=prefix + "*", count=1000):
            client.unlink(k)
    print(f"# {platform.node()} {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
          f"warm {args.warm}, labels {args.labels}, calls {args.calls} per variant")  # fmt: skip
    print("| variant | mean µs | p50 µs | p99 µs |\n|---|---:|---:|---:|")
    for variant, (mean, p50, p99) in results.items():
        print(f"| {variant} | {mean:,.0f} | {p50:,.0f} | {p99:,.0f} |")


if __name__ == "__main__":
    main()
