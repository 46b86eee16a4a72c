"""The stream worker against real brokers: Redis on this machine and librdkafka's mock cluster.

Kafka and Redis are real here: the Kafka clients speak the Kafka protocol over loopback to the
mock cluster that librdkafka starts in process (`test.mock.num.brokers`), and the Redis tests use
the Redis server on 127.0.0.1:6379 (unique key names per test, deleted afterwards). The only
stand-in is `ModelStandIn`, a small deterministic scorer in place of the CatBoost model behind
`Scorer.score_many`, so these tests exercise the delivery guarantees, not the model.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fraud_assets.serving.stream import (
    DeadLetter,
    RedisDecisionCache,
    RedisStreamSink,
    RedisStreamSource,
    SourceMessage,
    StreamWorker,
    decode_transaction,
    tx_key,
)

redis = pytest.importorskip("redis")
ck = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


class ModelStandIn:
    """Stands in for the model behind `Scorer.score_many` (not for any infrastructure).

    Deterministic per transaction id unless `drift` is set, in which case every call gives
    different probabilities (a model/feature state that moved between deliveries). A
    non-positive amount is rejected with ValueError, as the real `Transaction` does.
    """

    def __init__(self, drift: bool = False) -> None:
        self.calls: list[int] = []
        self.seen: list[str] = []
        self.drift = drift

    def score_many(self, txs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append(len(txs))
        out = []
        for tx in txs:
            if not float(tx["tx_amount"]) > 0:
                raise ValueError(f"tx_amount must be a positive number, got {tx['tx_amount']!r}")
            i = int(tx["transaction_id"])
            p = (i * 7919 % 1000) / 1000
            if self.drift:
                p = (p + len(self.calls) / 997) % 1
            out.append(
                {
                    "transaction_id": tx["transaction_id"],
                    "fraud_probability": p,
                    "decision": "block" if p >= 0.9 else "approve",
                    "model_version": "stand-in-1",
                    "decided_by": "model",
                }
            )
        self.seen += [tx_key(tx["transaction_id"]) for tx in txs]
        return out


class FailsOnce(ModelStandIn):
    """The model stand-in whose first call fails like an unreachable feature store."""

    def score_many(self, txs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.calls:
            self.calls.append(0)
            raise ConnectionError("feature store unreachable")
        return super().score_many(txs)


def raw_tx(i: int, amount: float | None = None) -> bytes:
    tx = {
        "transaction_id": i,
        "tx_datetime": f"2024-03-01 00:{i // 60 % 60:02d}:{i % 60:02d}",
        "customer_id": i % 50,
        "terminal_id": i % 30,
        "tx_amount": 10.5 + i % 300 if amount is None else amount,
        "tx_time_seconds": i,
    }
    return json.dumps(tx).encode()


MALFORMED = {
    b"not json at all": "not JSON",
    b"[1, 2, 3]": "not a JSON object",
    b'{"customer_id": 1, "tx_amount": 5.0}': "no transaction_id",
    b"\xff\xfe\x00garbage": "not UTF-8",
}


def drain(worker: StreamWorker, expected: int, timeout_s: float = 20.0) -> None:
    """Run batches until `expected` messages were handled (decided or dead-lettered)."""
    deadline = time.monotonic() + timeout_s
    while worker.totals.received < expected:
        assert time.monotonic() < deadline, f"only {worker.totals.received}/{expected} handled"
        worker.run_once()


class CrashBeforeCommit:
    """Wraps a source: the worker publishes and flushes, then dies before committing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        return self.inner.poll(max_messages, timeout_s)

    def commit(self, messages: Any) -> None:
        raise RuntimeError("simulated crash between the sink flush and the commit")

    def rewind(self, messages: Any) -> None:
        pass  # the process is gone; nothing rewinds

    def close(self) -> None:
        self.inner.close()


def check_decisions(records: list[tuple[str, dict[str, Any]]], ids: range) -> None:
    """Each id has a decision under its own key; duplicates are identical."""
    by_key: dict[str, dict[str, Any]] = {}
    for key, decision in records:
        assert tx_key(decision["transaction_id"]) == key
        assert by_key.setdefault(key, decision) == decision, f"different duplicates for {key}"
    assert set(by_key) == {str(i) for i in ids}


# --------------------------------------------------------------------------- Redis


@pytest.fixture
def r() -> Iterator[Any]:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test:stream:{uuid.uuid4().hex[:10]}:"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def redis_names(r: Any) -> tuple[str, str, str]:
    p = r.test_prefix
    return p + "in", p + "decisions", p + "dead"


def redis_worker(r: Any, scorer: Any, consumer: str = "c1", **kw: Any) -> StreamWorker:
    inp, out, dead = redis_names(r)
    claim = kw.pop("claim_min_idle_ms", 60_000)
    decided = kw.pop("decided", None)
    source = RedisStreamSource(r, inp, "workers", consumer=consumer, claim_min_idle_ms=claim)
    return StreamWorker(source, RedisStreamSink(r, out, dead), scorer, decided=decided, **kw)


def redis_produce(r: Any, values: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for v in values:
        pipe.xadd(redis_names(r)[0], {"data": v})
    pipe.execute()


def redis_decisions(r: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f[b"transaction_id"].decode(), json.loads(f[b"data"]))
        for _, f in r.xrange(redis_names(r)[1])
    ]


def test_redis_every_transaction_decided_once_and_malformed_dead_lettered(r: Any) -> None:
    bad_amount = raw_tx(10_001, amount=-3.0)
    values = [raw_tx(i) for i in range(200)] + list(MALFORMED) + [bad_amount]
    values += [raw_tx(i) for i in range(200, 300)]
    redis_produce(r, values)
    worker = redis_worker(r, ModelStandIn(), batch_size=64)
    drain(worker, len(values))

    decisions = redis_decisions(r)
    assert len(decisions) == 300
    check_decisions(decisions, range(300))
    dead = r.xrange(redis_names(r)[2])
    got = {f[b"data"]: f[b"reason"].decode() for _, f in dead}
    assert len(dead) == len(MALFORMED) + 1
    for value, reason in MALFORMED.items():
        assert reason in got[value]
    assert "rejected by the scorer: ValueError" in got[bad_amount]
    # Everything acknowledged: nothing pending in the group.
    assert r.xpending(redis_names(r)[0], "workers")["pending"] == 0


@pytest.mark.parametrize("restart", ["same consumer", "other consumer claims"])
def test_redis_crash_before_ack_is_redelivered(r: Any, restart: str) -> None:
    redis_produce(r, [raw_tx(i) for i in range(250)])
    first = redis_worker(r, ModelStandIn(), consumer="c1", batch_size=100)
    first.source = CrashBeforeCommit(first.source)
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.run_once()
    assert len(redis_decisions(r)) == 100  # published, but never acknowledged
    assert r.xpending(redis_names(r)[0], "workers")["pending"] == 100

    if restart == "same consumer":
        second = redis_worker(r, ModelStandIn(), consumer="c1", batch_size=100)
    else:
        second = redis_worker(r, ModelStandIn(), consumer="c2", batch_size=100,
                              claim_min_idle_ms=200)  # fmt: skip
        wait_until_idle(r, redis_names(r)[0], "workers", idle_ms=200)
    drain(second, 250)
    assert second.totals.received == 250  # the 100 pending ones again, then the other 150
    decisions = redis_decisions(r)
    assert len(decisions) == 350  # at least once: 100 duplicates
    check_decisions(decisions, range(250))
    assert r.xpending(redis_names(r)[0], "workers")["pending"] == 0


def test_redis_decision_cache_makes_duplicates_identical_and_skips_rescoring(r: Any) -> None:
    redis_produce(r, [raw_tx(i) for i in range(150)])
    cache = RedisDecisionCache(r, prefix=r.test_prefix + "decided:", ttl_seconds=600)
    scorer = ModelStandIn(drift=True)  # a second scoring would give different probabilities
    first = redis_worker(r, scorer, consumer="c1", batch_size=100, decided=cache)
    first.source = CrashBeforeCommit(first.source)
    with pytest.raises(RuntimeError):
        first.run_once()
    second = redis_worker(r, scorer, consumer="c1", batch_size=100, decided=cache)
    drain(second, 150)
    assert second.totals.from_cache == 100
    assert sorted(scorer.seen, key=int) == [str(i) for i in range(150)]  # each scored once
    decisions = redis_decisions(r)
    assert len(decisions) == 250
    check_decisions(decisions, range(150))
    assert 0 < r.ttl(r.test_prefix + "decided:7") <= 600


def test_redis_failed_batch_is_rewound_and_retried_in_process(r: Any) -> None:
    redis_produce(r, [raw_tx(i) for i in range(120)])
    worker = redis_worker(r, FailsOnce(), batch_size=50)
    with pytest.raises(ConnectionError):
        worker.run_once()  # nothing published, nothing acknowledged, source rewound
    drain(worker, 120)
    decisions = redis_decisions(r)
    assert len(decisions) == 120  # the failed batch came back first, nothing skipped
    check_decisions(decisions, range(120))


def test_redis_batching(r: Any) -> None:
    redis_produce(r, [raw_tx(i) for i in range(1000)])
    scorer = ModelStandIn()
    worker = redis_worker(r, scorer, batch_size=100, max_wait_ms=200)
    drain(worker, 1000)
    assert len(scorer.calls) <= 10 and max(scorer.calls) == 100


def test_decoding_rules() -> None:
    assert decode_transaction(b'{"transaction_id": "0042"}') == {"transaction_id": "0042"}
    assert tx_key("0042") == tx_key(42) == tx_key(42.0) == "42"
    for bad in (None, b'{"transaction_id": true}', b'{"transaction_id": null}'):
        with pytest.raises(ValueError):
            decode_transaction(bad)


def test_worker_duplicate_ids_in_one_batch_scored_once() -> None:
    class ListSource:
        def __init__(self, values: list[bytes]) -> None:
            self.values, self.committed = values, []

        def poll(self, n: int, _t: float) -> list[SourceMessage]:
            batch, self.values = self.values[:n], self.values[n:]
            return [SourceMessage(v, f"m{i}", i) for i, v in enumerate(batch)]

        def commit(self, messages: Any) -> None:
            self.committed += messages

        def rewind(self, messages: Any) -> None: ...

        def close(self) -> None: ...

    class ListSink:
        def __init__(self) -> None:
            self.decisions: list[tuple[str, dict]] = []
            self.dead: list[DeadLetter] = []

        def publish_decisions(self, d: Any) -> None:
            self.decisions += d

        def publish_dead_letters(self, d: Any) -> None:
            self.dead += d

        def flush(self) -> None: ...

        def close(self) -> None: ...

    source, sink, scorer = ListSource([raw_tx(1), raw_tx(1), raw_tx(2)]), ListSink(), ModelStandIn()
    StreamWorker(source, sink, scorer).run_once()
    assert scorer.calls == [2] and [k for k, _ in sink.decisions] == ["1", "2"]
    assert len(source.committed) == 3


# --------------------------------------------------------------------------- Kafka mock cluster


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """librdkafka's mock cluster (3 brokers on loopback); yields its bootstrap servers.

    The cluster lives inside the client that created it; other clients reach it over TCP.
    """
    messages: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger(f"mock-kafka-{uuid.uuid4().hex[:6]}")
    logger.addHandler(Capture())
    logger.setLevel(logging.INFO)
    owner = ck.Producer({"test.mock.num.brokers": 3, "logger": logger})
    deadline = time.monotonic() + 10
    found = None
    while found is None and time.monotonic() < deadline:
        owner.poll(0.1)
        found = next((m for m in messages if "Mock cluster enabled" in m), None)
    assert found, "the mock cluster did not start"
    bootstrap = re.search(r"replaced with (\S+)", found).group(1)  # type: ignore[union-attr]
    yield bootstrap
    del owner


def kafka_names() -> tuple[str, str, str, str]:
    p = f"t{uuid.uuid4().hex[:10]}"
    return p + ".in", p + ".decisions", p + ".dead", p + ".group"


def kafka_produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, value=v, key=str(i))
    assert p.flush(15) == 0


def kafka_read(bootstrap: str, topic: str, expected: int, timeout_s: float = 15) -> list[Any]:
    """Every message of `topic` from the beginning (assigned partitions, no group join): as
    many as the partitions' high watermarks say were written, so a surplus beyond `expected`
    is read too, without waiting to see whether more arrives."""
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                     "enable.auto.commit": False})  # fmt: skip
    parts = [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
             for p in c.list_topics(topic, timeout=10).topics[topic].partitions]  # fmt: skip
    c.assign(parts)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out += [m for m in c.consume(1000, 0.2) if m.error() is None]
    written = sum(high - low for low, high in
                  (c.get_watermark_offsets(p, timeout=10) for p in parts))  # fmt: skip
    while len(out) < written and time.monotonic() < deadline:
        out += [m for m in c.consume(1000, 0.2) if m.error() is None]
    c.close()
    return out


def wait_until_idle(r: Any, stream: str, group: str, idle_ms: int, timeout_s: float = 10) -> None:
    """Until every pending message of `group` has been idle `idle_ms` (what XAUTOCLAIM asks):
    the claim then finds them all, whatever the machine's speed."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = r.xpending_range(stream, group, min="-", max="+", count=10_000)
        if pending and min(p["time_since_delivered"] for p in pending) >= idle_ms:
            return
        assert time.monotonic() < deadline, "pending messages never became idle"
        time.sleep(0.02)


def kafka_worker(bootstrap: str, names: tuple[str, ...], scorer: Any, **kw: Any) -> StreamWorker:
    from fraud_assets.serving.stream import KafkaSink, KafkaSource

    inp, out, dead, group = names
    # The mock cluster drops a closed consumer from its group only at the session timeout (as
    # for a crashed one), so the replacement waits that long: keep it short.
    source = KafkaSource(bootstrap, inp, group, config={"session.timeout.ms": 6000})
    return StreamWorker(source, KafkaSink(bootstrap, out, dead), scorer, **kw)


def kafka_decisions(msgs: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(m.key().decode(), json.loads(m.value())) for m in msgs]


def test_kafka_every_transaction_decided_once_and_malformed_dead_lettered(kafka: str) -> None:
    names = kafka_names()
    bad_amount = raw_tx(10_001, amount=0.0)
    values = [raw_tx(i) for i in range(300)] + list(MALFORMED) + [bad_amount]
    kafka_produce(kafka, names[0], values)
    worker = kafka_worker(kafka, names, ModelStandIn(), batch_size=128)
    drain(worker, len(values))
    worker.source.close()

    decisions = kafka_decisions(kafka_read(kafka, names[1], 300))
    assert len(decisions) == 300
    check_decisions(decisions, range(300))
    dead = kafka_read(kafka, names[2], len(MALFORMED) + 1)
    got = {m.value(): dict(m.headers()) for m in dead}
    assert len(dead) == len(MALFORMED) + 1
    for value, reason in MALFORMED.items():
        assert reason in got[value]["dlq.reason"].decode()
        assert got[value]["dlq.source"].decode().startswith(names[0] + "[")
    assert b"rejected by the scorer" in got[bad_amount]["dlq.reason"]


def test_kafka_crash_before_commit_is_redelivered(kafka: str) -> None:
    names = kafka_names()
    kafka_produce(kafka, names[0], [raw_tx(i) for i in range(400)])
    first = kafka_worker(kafka, names, ModelStandIn(), batch_size=150, max_wait_ms=1000)
    first.source = CrashBeforeCommit(first.source)
    with pytest.raises(RuntimeError, match="simulated crash"):
        while True:  # the first polls may return nothing while the group forms
            first.run_once()
    published = len(kafka_read(kafka, names[1], 1, timeout_s=5))
    assert published > 0
    first.source.close()  # the process is gone; nothing was committed

    second = kafka_worker(kafka, names, ModelStandIn(), batch_size=150)
    drain(second, 400)
    second.source.close()
    decisions = kafka_decisions(kafka_read(kafka, names[1], 400 + published))
    assert len(decisions) == 400 + published  # the crashed batch twice, the rest once
    check_decisions(decisions, range(400))


def test_kafka_batching_and_in_process_retry(kafka: str) -> None:
    names = kafka_names()
    kafka_produce(kafka, names[0], [raw_tx(i) for i in range(1000)])
    scorer = FailsOnce()
    worker = kafka_worker(kafka, names, scorer, batch_size=100, max_wait_ms=500)
    with pytest.raises(ConnectionError):
        while True:
            worker.run_once()  # the first batch fails: the partitions are sought back
    drain(worker, 1000)
    worker.source.close()
    calls = scorer.calls[1:]
    assert len(calls) <= 11 and max(calls) == 100, calls
    decisions = kafka_decisions(kafka_read(kafka, names[1], 1000))
    assert len(decisions) == 1000  # nothing skipped, nothing published twice
    check_decisions(decisions, range(1000))
