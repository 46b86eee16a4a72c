"""Cost of the Redis scoring script per transaction, by variant, in one session.

The online store runs one Lua script per scored transaction (`serving/lua/score.lua`). This
measures it apart from HTTP, JSON and the model: a synthetic in-order stream (--cards cards,
--terminals terminals, --per-day transactions a day) is first scored for --days days in
pipelines (so the id index and the histories have their steady-state size), then --calls more
transactions are scored one call at a time, as single API requests do. Reported per variant:
Redis's own time per EVALSHA (INFO commandstats, delta over the measured calls; checked to be
ours alone) and the single-call rate seen by the Python client.

Variants
    current      the store as shipped (lua/score.lua)
    no-id-index  the same script without the id index, the clock and the time guard (what
                 scoring cost before first-version-wins and the time guard; NOT correct, a
                 reference point only)

    .venv/bin/python benchmarks/bench_score_script.py                 # 40 days, 20k calls
    .venv/bin/python benchmarks/bench_score_script.py --days 5 --calls 2000   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from fraud_assets.serving.online_features import (  # noqa: E402
    _SCORE_LUA,
    RedisFeatureStore,
    Transaction,
)

ORIGIN = dt.datetime(2018, 4, 1)


def _without_id_index(script: str) -> str:
    """The script minus the id index, the clock and the guard (reference point only)."""
    drop = (
        "local prev = redis.call('HGET'",
        "if prev and prev ~= ARGV[11]",
        "if t > clock + tonumber(ARGV[12])",
        "if t <= clock - tonumber(ARGV[5])",
        "redis.call('HSET', KEYS[4]",
        "redis.call('ZADD', KEYS[5]",
        "if (not clock) or t > clock then redis.call('SET'",
    )
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith(drop)]
    text = "\n".join(lines)
    text = text.replace("local clock = tonumber(redis.call('GET', KEYS[6]))", "local clock = nil")
    text = text.replace("if (not prev) and clock then\n", "if false then\n")
    text = text.replace("if not prev then\nend\n", "")
    old = text.index("local old = redis.call('ZRANGEBYSCORE', KEYS[5]")
    end = text.index("local ttl")
    return text[:old] + text[end:]


def _without_prune(script: str) -> str:
    """The script minus the pruning of the id index (reference point only)."""
    old = script.index("local old = redis.call('ZRANGEBYSCORE', KEYS[5]")
    end = script.index("local ttl")
    return script[:old] + script[end:]


VARIANTS = {
    "current": _SCORE_LUA,
    "no-id-index": _without_id_index(_SCORE_LUA),
    "no-prune": _without_prune(_SCORE_LUA),
}


def stream(cards: int, terminals: int, per_day: int, days: int, seed: int):
    rng = random.Random(seed)
    step = 86_400 / per_day
    for i in range(per_day * days):
        t = int(i * step)
        yield Transaction(
            transaction_id=i,
            tx_datetime=ORIGIN + dt.timedelta(seconds=t),
            customer_id=rng.randrange(cards),
            terminal_id=rng.randrange(terminals),
            tx_amount=round(rng.uniform(1, 200), 2),
            tx_time_seconds=t,
        )


def evalsha_stats(client: redis.Redis) -> tuple[int, int]:
    s = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(s.get("calls", 0)), int(s.get("usec", 0))


def run(variant: str, args: argparse.Namespace) -> dict:
    client = redis.Redis.from_url(args.redis_url)
    store = RedisFeatureStore(client, prefix=f"bench-score-{uuid.uuid4().hex[:8]}:")
    store._score = client.register_script(VARIANTS[variant])
    txs = list(stream(args.cards, args.terminals, args.per_day, args.days, args.seed))
    warm, measured = txs[: -args.calls], txs[-args.calls :]
    try:
        t0 = time.perf_counter()
        for i in range(0, len(warm), 500):
            store.features_for_many(warm[i : i + 500])
        warm_s = time.perf_counter() - t0
        calls0, usec0 = evalsha_stats(client)
        t0 = time.perf_counter()
        for tx in measured:
            store.features_for(tx)
        wall = time.perf_counter() - t0
        calls1, usec1 = evalsha_stats(client)
        calls = calls1 - calls0
        return {
            "variant": variant,
            "warm_rows": len(warm),
            "warm_rows_per_s": len(warm) / warm_s,
            "redis_us_per_call": (usec1 - usec0) / max(calls, 1),
            "calls_ours": calls == len(measured),
            "single_calls_per_s": len(measured) / wall,
        }
    finally:
        store.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--cards", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}, {dt.date.today()}, {platform.node()}, {platform.processor()}")
    print(f"{args.days} days x {args.per_day} tx warm, then {args.calls} single calls")
    print("| variant | warm rows/s (pipelined) | Redis µs per EVALSHA | single calls/s |")
    print("|---|---:|---:|---:|")
    for v in args.variants:
        r = run(v, args)
        note = "" if r["calls_ours"] else " (other EVALSHA traffic during the run)"
        print(
            f"| {v} | {r['warm_rows_per_s']:,.0f} | {r['redis_us_per_call']:.1f}{note} | "
            f"{r['single_calls_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main()
