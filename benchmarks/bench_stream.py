"""Throughput of the stream worker (`fraud stream`) on Redis Streams and on Kafka.

The worker is the production one (`StreamWorker`) with the production scorer (`build_scorer`:
the registry's champion, online features in the local Redis, rules, pseudonymisation) and, as
`fraud stream` runs by default, the Redis decision cache for idempotent redelivery. The model is
`bench_serving.py`'s cached `fraud-detector` v1 (trained on first use).

For each transport: --messages raw transactions (JSON, distinct ids, 2,000 cards and 4,000
terminals, times one second apart) are produced to a fresh input topic; then the worker runs
`run_once` until every message has a decision. Reported: messages/s from the first poll to the
last commit, per-batch p50/p99 seconds, and a check that the decisions topic holds exactly one
decision per transaction id.

Kafka is librdkafka's mock cluster (3 brokers on loopback, started in this process), the one the
tests use: it speaks the Kafka protocol, but it is not a tuned broker, so the Kafka row measures
the worker with a real client and protocol rather than a production cluster.

    .venv/bin/python benchmarks/bench_stream.py                      # 100,000 messages each
    .venv/bin/python benchmarks/bench_stream.py --messages 20000 --transports redis
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import os
import platform
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import MODEL_NAME, ORIGIN, ensure_model  # noqa: E402

CUSTOMERS = 2_000
TERMINALS = 4_000
FIRST_TIME = dt.datetime(2018, 5, 4)  # after the model's training data


@dataclass
class Row:
    transport: str
    messages: int
    seconds: float
    batches: int
    p50_batch_s: float
    p99_batch_s: float
    decisions: int
    distinct: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def raw_messages(n: int, first_id: int) -> list[bytes]:
    out = []
    for k in range(n):
        tid = first_id + k
        when = FIRST_TIME + dt.timedelta(seconds=k)
        out.append(
            json.dumps(
                {
                    "transaction_id": tid,
                    "tx_datetime": when.isoformat(sep=" "),
                    "customer_id": tid % CUSTOMERS,
                    "terminal_id": (tid * 7) % TERMINALS,
                    "tx_amount": round(10 + (tid % 997) / 10, 2),
                },
                separators=(",", ":"),
            ).encode()
        )
    return out


def scorer_from_env(uri: str, artifacts: str, redis_url: str, prefix: str) -> Any:
    from fraud_assets.serving.settings import ServiceSettings
    from fraud_assets.serving.wiring import build_scorer

    settings = ServiceSettings(
        mlflow_tracking_uri=uri,
        mlflow_artifacts=artifacts,
        model_name=MODEL_NAME,
        redis_url=redis_url,
        redis_prefix=prefix,
        origin_date=ORIGIN,
    )
    scorer = build_scorer(settings)
    scorer.model_source.refresh()
    if not scorer.model_source.ready:
        raise RuntimeError(f"no champion loaded: {scorer.model_source.status()}")
    return scorer


def drain(worker: Any, expected: int, timeout_s: float) -> tuple[float, list[float]]:
    """run_once until `expected` decisions; (seconds from the first non-empty poll, batch s)."""
    batches: list[float] = []
    started = None
    deadline = time.monotonic() + timeout_s
    while worker.totals.decided < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.totals.decided:,} of {expected:,} decided in time")
        t0 = time.perf_counter()
        stats = worker.run_once()
        if stats.received:
            started = t0 if started is None else started
            batches.append(stats.seconds)
    assert started is not None
    return time.perf_counter() - started, batches


def bench_redis(args: argparse.Namespace, uri: str, artifacts: str) -> Row:
    import redis

    from fraud_assets.serving.stream import (
        RedisDecisionCache,
        RedisStreamSink,
        RedisStreamSource,
        StreamWorker,
    )

    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench-stream:{uuid.uuid4().hex}:"
    names = [prefix + n for n in ("in", "decisions", "dead")]
    try:
        pipe = client.pipeline(transaction=False)
        for k, value in enumerate(raw_messages(args.messages, 10**12)):
            pipe.xadd(names[0], {"data": value})
            if k % 1000 == 999:
                pipe.execute()
        pipe.execute()
        scorer = scorer_from_env(uri, artifacts, args.redis_url, prefix + "features:")
        worker = StreamWorker(
            RedisStreamSource(client, names[0], "bench", consumer="bench-1"),
            RedisStreamSink(client, names[1], names[2]),
            scorer,
            batch_size=args.batch_size,
            decided=RedisDecisionCache(client, prefix=prefix + "decided:"),
        )
        seconds, batches = drain(worker, args.messages, args.timeout)
        keys = [
            fields[b"transaction_id"]
            for _, fields in client.xrange(names[1], count=args.messages * 2)
        ]
        return Row("Redis Streams", args.messages, seconds, len(batches),
                   float(np.percentile(batches, 50)), float(np.percentile(batches, 99)),
                   len(keys), len(set(keys)))  # fmt: skip
    finally:
        doomed = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(doomed), 1000):
            client.delete(*doomed[i : i + 1000])


def mock_kafka_cluster() -> tuple[Any, str]:
    """librdkafka's in-process mock cluster; (the client that owns it, bootstrap servers)."""
    import confluent_kafka as ck

    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger(f"mock-kafka-{uuid.uuid4().hex[:6]}")
    logger.addHandler(Capture())
    logger.setLevel(logging.INFO)
    owner = ck.Producer({"test.mock.num.brokers": 3, "logger": logger})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        owner.poll(0.1)
        found = next((m for m in seen if "Mock cluster enabled" in m), None)
        if found:
            return owner, re.search(r"replaced with (\S+)", found).group(1)
    raise RuntimeError("librdkafka's mock cluster did not start")


def read_topic(
    bootstrap: str, topic: str, keys: list[bytes], expected: int, done: threading.Event
) -> None:
    """Every message key of `topic` from the beginning, until `expected` and `done` (+1 s)."""
    import confluent_kafka as ck

    reader = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-reader",
                          "enable.auto.commit": False})  # fmt: skip
    parts: list[int] = []
    while not parts:  # the topic appears with the first decision
        meta = reader.list_topics(topic, timeout=10).topics[topic]
        parts = list(meta.partitions) if meta.error is None else []
        if not parts:
            time.sleep(0.05)
    reader.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
    give_up = None
    while True:
        keys += [m.key() for m in reader.consume(5000, 0.2) if m.error() is None]
        if done.is_set():
            give_up = give_up or time.monotonic() + 120
            if len(keys) >= expected or time.monotonic() > give_up:
                break
    time.sleep(1)  # anything beyond one decision per id would show up now
    keys += [m.key() for m in reader.consume(5000, 1.0) if m.error() is None]
    reader.close()


def bench_kafka(args: argparse.Namespace, uri: str, artifacts: str) -> Row:
    import confluent_kafka as ck
    import redis

    from fraud_assets.serving.stream import KafkaSink, KafkaSource, RedisDecisionCache, StreamWorker

    owner, bootstrap = mock_kafka_cluster()
    topic = f"bench{uuid.uuid4().hex[:8]}"
    names = [topic + ".in", topic + ".decisions", topic + ".dead"]
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench-stream:{uuid.uuid4().hex}:"
    try:
        producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for k, value in enumerate(raw_messages(args.messages, 2 * 10**12)):
            while True:
                try:
                    producer.produce(names[0], value=value, key=str(k))
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60) != 0:
            raise RuntimeError("the input topic was not fully produced")
        del producer  # before the cluster goes: a live client would keep reconnecting
        scorer = scorer_from_env(uri, artifacts, args.redis_url, prefix + "features:")
        worker = StreamWorker(
            KafkaSource(bootstrap, names[0], topic + ".group"),
            KafkaSink(bootstrap, names[1], names[2]),
            scorer,
            batch_size=args.batch_size,
            decided=RedisDecisionCache(client, prefix=prefix + "decided:"),
        )
        # The mock cluster keeps only the newest ~5 MB of each partition, so the decisions are
        # read back while they are being written, not afterwards.
        keys: list[bytes] = []
        done = threading.Event()
        reader = threading.Thread(
            target=read_topic, args=(bootstrap, names[1], keys, args.messages, done)
        )
        reader.start()
        seconds, batches = drain(worker, args.messages, args.timeout)
        worker.source.close()
        worker.sink.close()
        done.set()
        reader.join()
        del worker  # its clients, before the cluster goes
        return Row("Kafka (librdkafka mock cluster)", args.messages, seconds, len(batches),
                   float(np.percentile(batches, 50)), float(np.percentile(batches, 99)),
                   len(keys), len(set(keys)))  # fmt: skip
    finally:
        gc.collect()  # the worker's clients, so none outlives the cluster
        del owner
        doomed = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(doomed), 1000):
            client.delete(*doomed[i : i + 1000])


def table(rows: list[Row], batch_size: int) -> str:
    lines = [
        f"| Transport | Messages | Throughput | Batch (≤ {batch_size}) p50 s | p99 s | Batches "
        "| Decisions (distinct ids) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.transport} | {r.messages:,} | {r.rate:,.0f} msg/s | {r.p50_batch_s:.3f} | "
            f"{r.p99_batch_s:.3f} | {r.batches:,} | {r.decisions:,} ({r.distinct:,}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="per transport")
    parser.add_argument("--batch-size", type=int, default=500, help="as `fraud stream`")
    parser.add_argument(
        "--transports", nargs="+", choices=["redis", "kafka"], default=["redis", "kafka"]
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=900.0, help="per transport, s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}"
    )
    uri, artifacts = ensure_model()
    rows = []
    for transport in args.transports:
        bench = bench_redis if transport == "redis" else bench_kafka
        row = bench(args, uri, artifacts)
        rows.append(row)
        print(table([row], args.batch_size), flush=True)
    print()
    print(table(rows, args.batch_size))
    for r in rows:
        if r.decisions != args.messages or r.distinct != args.messages:
            print(f"FAILED: {r.transport}: {r.decisions:,} decisions, {r.distinct:,} distinct ids")
            sys.exit(1)
    print(f"every transaction decided exactly once; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
