"""Stream worker: raw transactions in, decisions out, with the scoring code of the REST API.

One loop, two transports. `StreamWorker` polls a batch of raw transactions from a `Source`,
decodes them, scores them with one `score_many` call, publishes the decisions through a `Sink`
and only then commits the batch on the source.

Public API
    BatchScorer                  protocol: `score_many(list[dict]) -> list[dict]` (the `Scorer`)
    StreamWorker(source, sink, scorer, batch_size=500, max_wait_ms=50, decided=None)
        .run_once() -> BatchStats   one batch: poll, decode, score, publish, flush, commit
        .run(stop_event)            `run_once` until the event is set; `.totals` accumulates;
                                    a failed batch is rewound and retried after a backoff
    SourceMessage, DeadLetter, BatchStats, SinkError
    Source / Sink                protocols the transports implement
    KafkaSource(bootstrap_servers, topic, group, config=None)       confluent-kafka Consumer
    KafkaSink(bootstrap_servers, decisions_topic, dead_letter_topic, config=None)   Producer
    RedisStreamSource(client, stream, group, consumer=None, claim_min_idle_ms=60_000)
    RedisStreamSink(client, decisions_stream, dead_letter_stream, maxlen=None)
    DecisionCache / RedisDecisionCache(client, prefix="fraud:decided:", ttl_seconds=7 days)
    decode_transaction(raw) -> dict      the JSON decoding rules (raises MalformedMessage)

Message formats
    Kafka input: the message value is one JSON object, the raw transaction (the key is ignored).
    Redis input: a stream entry whose field `data` (configurable) holds that JSON object.
    Decisions: the decision dict as JSON, keyed by `str(transaction_id)` (Kafka message key;
    Redis field `transaction_id` next to `data`).
    Dead letters: the original bytes, untouched, plus the reason and where they came from
    (Kafka: value = original bytes, headers `dlq.reason`, `dlq.source`; Redis: fields `data`,
    `reason`, `source`). A message is malformed when it is not UTF-8 JSON, not a JSON object,
    has no usable `transaction_id`, or the scorer rejects it with a data error (ValueError,
    TypeError, KeyError; e.g. a non-positive amount). Nothing malformed crashes the worker and
    nothing is dropped: a dead letter is committed on the source only after it is flushed.

Delivery: at least once
    Order inside `run_once`: poll -> score -> publish decisions and dead letters -> flush the
    sink (every write acknowledged: Kafka acks=all with the idempotent producer, Redis replies)
    -> commit the source (Kafka offsets / Redis XACK). A crash anywhere before the commit leaves
    the batch uncommitted and it is delivered again: Kafka from the group's committed offsets
    to whichever consumer owns the partition next; Redis from the group's pending list, read
    back by a consumer restarting under the same name and claimed (XAUTOCLAIM) by any other
    consumer once it has been idle `claim_min_idle_ms`. If the sink or the commit fails,
    `run_once` raises and the worker stops: continuing would move past the uncommitted batch
    (the Kafka consumer's position is already beyond it). Before raising, `run_once` rewinds
    the source (Kafka: seek each partition back to the batch's first offset; Redis: read this
    consumer's pending entries again), so `run` logs the error, backs off (1 s doubling to
    30 s) and retries the same batch: a model not loaded yet, the feature store or the broker
    being down stall the worker, they never skip messages. A process that dies instead is
    covered by the redelivery above. Infrastructure errors from the scorer (anything but the
    data errors above: ModelNotReady, FeatureStoreUnavailable, connection errors) are such
    failures.

Idempotence
    Decisions are keyed by transaction id, so a redelivered transaction produces a record
    under the same key; a compacted Kafka topic or a reader keeping the last record per key
    sees exactly one decision per transaction. Duplicates are identical when a `DecisionCache`
    is given (`decided=`): after scoring, each decision is stored with SET NX (first writer
    wins, with a TTL) *before* it is published, and the stored one is what gets published.
    A redelivered transaction is looked up first and re-published from the cache without
    being scored again, so it does not reach the model or the online feature store twice.
    Without a cache a redelivered transaction is scored again; the online feature store is
    itself idempotent per transaction id (the first version wins, whatever a redelivery
    carries), so its state is unchanged, but the probability may differ if labels arrived in
    between. A transaction the time guard refuses is a data error: dead-lettered with the
    reason.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

# Errors a scorer raises for a bad transaction (pydantic's ValidationError is a ValueError).
# Anything else (connection errors, a missing model) is infrastructure and propagates.
DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError)


@runtime_checkable
class BatchScorer(Protocol):
    """What the worker needs from the scoring code: one call per batch."""

    def score_many(self, transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One decision per transaction, in order; each has at least `transaction_id`."""
        ...


@dataclass(frozen=True)
class SourceMessage:
    """One message from a source: its payload and an opaque handle the source commits with."""

    value: bytes | None
    ref: str  # human-readable origin, e.g. "topic[2]@17" or "stream:1700000000-0"
    handle: Any = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that cannot be scored, kept byte for byte with the reason."""

    value: bytes | None
    reason: str
    source: str
    key: str | None = None


class MalformedMessage(ValueError):
    """The payload is not a raw transaction; the message goes to the dead-letter output."""


class SinkError(RuntimeError):
    """The sink could not confirm every write; the batch must not be committed."""


class Source(Protocol):
    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]: ...

    def commit(self, messages: Sequence[SourceMessage]) -> None: ...

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        """Make the next polls return these uncommitted messages again."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    def publish_decisions(self, decisions: Sequence[tuple[str, dict[str, Any]]]) -> None: ...

    def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    def flush(self) -> None:
        """Block until every write since the last flush is acknowledged; raise SinkError."""
        ...

    def close(self) -> None: ...


class DecisionCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def put_many(self, decisions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Store decisions not stored yet; return the stored ones (first writer wins)."""
        ...


# --------------------------------------------------------------------------- decoding


def tx_key(transaction_id: Any) -> str:
    """The key of a transaction id: ints and int-like strings give the same key."""
    bad = MalformedMessage(f"transaction_id must be an integer or a string, not {transaction_id!r}")
    if isinstance(transaction_id, bool):
        raise bad
    if isinstance(transaction_id, int):
        return str(transaction_id)
    if isinstance(transaction_id, float) and transaction_id.is_integer():
        return str(int(transaction_id))
    if isinstance(transaction_id, str) and transaction_id.strip():
        s = transaction_id.strip()
        return str(int(s)) if s.lstrip("-").isdigit() else s
    raise bad


def decode_transaction(raw: bytes | None) -> dict[str, Any]:
    """The raw transaction in a message payload, or MalformedMessage with the reason."""
    if raw is None:
        raise MalformedMessage("empty message (no value)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedMessage(f"not UTF-8: {e}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedMessage(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"not a JSON object but {type(obj).__name__}")
    if "transaction_id" not in obj:
        raise MalformedMessage("no transaction_id")
    tx_key(obj["transaction_id"])
    return obj


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def encode_decision(decision: dict[str, Any]) -> bytes:
    return json.dumps(decision, default=_json_default, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- worker


@dataclass
class BatchStats:
    received: int = 0
    decided: int = 0  # decisions published (one per distinct transaction id in the batch)
    scored: int = 0  # transactions sent to the scorer
    from_cache: int = 0  # redelivered transactions answered from the decision cache
    dead_lettered: int = 0
    seconds: float = 0.0

    def add(self, other: BatchStats) -> None:
        for name in ("received", "decided", "scored", "from_cache", "dead_lettered", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class StreamWorker:
    """Consume raw transactions, publish decisions, commit after the sink is flushed."""

    source: Source
    sink: Sink
    scorer: BatchScorer
    batch_size: int = 500
    max_wait_ms: int = 50
    decided: DecisionCache | None = None
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    totals: BatchStats = field(default_factory=BatchStats)
    score_calls: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")

    def run(
        self,
        stop_event: threading.Event,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        """Process batches until `stop_event` is set; the batch in flight is finished first.

        A failed batch (scorer infrastructure, sink, commit) has been rewound by `run_once`;
        it is retried after a backoff that doubles from `backoff_s` up to `max_backoff_s`.
        """
        delay = self.backoff_s
        while not stop_event.is_set():
            try:
                stats = self.run_once()
            except Exception as e:
                # The traceback once per streak of failures; then one line per retry.
                log.error(
                    "stream batch failed (%s: %s); rewound, retrying in %.1fs",
                    type(e).__name__, e, delay, exc_info=delay == self.backoff_s,
                )  # fmt: skip
                stop_event.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            delay = self.backoff_s
            if on_batch is not None:
                on_batch(stats)

    def run_once(self) -> BatchStats:
        """One batch. Raises (without committing) if scoring infrastructure or the sink fails."""
        t0 = time.perf_counter()
        messages = self.source.poll(self.batch_size, self.max_wait_ms / 1000)
        if not messages:
            return BatchStats()
        try:
            stats = self._process(messages)
        except BaseException:
            self.source.rewind(messages)
            raise
        stats.seconds = time.perf_counter() - t0
        self.totals.add(stats)
        return stats

    def _process(self, messages: list[SourceMessage]) -> BatchStats:
        stats = BatchStats(received=len(messages))
        letters: list[DeadLetter] = []
        pending: dict[str, dict[str, Any]] = {}  # key -> raw tx (first occurrence in the batch)
        order: list[str] = []
        for m in messages:
            try:
                tx = decode_transaction(m.value)
            except MalformedMessage as e:
                letters.append(DeadLetter(m.value, str(e), m.ref))
                continue
            key = tx_key(tx["transaction_id"])
            if key not in pending:
                pending[key] = tx
                order.append(key)

        decisions: dict[str, dict[str, Any]] = {}
        if self.decided is not None and order:
            decisions.update(self.decided.get_many(order))
            stats.from_cache = len(decisions)
        to_score = [k for k in order if k not in decisions]
        if to_score:
            fresh, rejected = self._score([pending[k] for k in to_score], to_score)
            stats.scored = len(to_score)
            for key, reason in rejected.items():
                letters.append(DeadLetter(_redump(pending[key]), reason, f"tx {key}", key))
            if self.decided is not None and fresh:
                fresh = self.decided.put_many(fresh)
            decisions.update(fresh)

        out = [(k, decisions[k]) for k in order if k in decisions]
        if out:
            self.sink.publish_decisions(out)
        if letters:
            self.sink.publish_dead_letters(letters)
        self.sink.flush()
        self.source.commit(messages)
        stats.decided = len(out)
        stats.dead_lettered = len(letters)
        return stats

    def _score(
        self, txs: list[dict[str, Any]], keys: list[str]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Decisions by key, and rejected keys with reasons (a data error isolates the culprit)."""
        try:
            return self._score_batch(txs, keys), {}
        except DATA_ERRORS as e:
            if len(txs) == 1:
                return {}, {keys[0]: f"rejected by the scorer: {type(e).__name__}: {e}"}
        # Bisect: halves that score go through, the bad transactions end up alone.
        mid = len(txs) // 2
        d1, r1 = self._score(txs[:mid], keys[:mid])
        d2, r2 = self._score(txs[mid:], keys[mid:])
        return {**d1, **d2}, {**r1, **r2}

    def _score_batch(self, txs: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, Any]]:
        self.score_calls += 1
        result = self.scorer.score_many(txs)
        if len(result) != len(txs):
            n, m = len(result), len(txs)
            raise RuntimeError(f"scorer returned {n} decisions for {m} transactions")
        out: dict[str, dict[str, Any]] = {}
        for key, decision in zip(keys, result, strict=True):
            got = tx_key(decision.get("transaction_id"))
            if got != key:
                raise RuntimeError(f"scorer returned a decision for {got} in place of {key}")
            out[key] = decision
        return out


def _redump(tx: dict[str, Any]) -> bytes:
    return json.dumps(tx, default=_json_default).encode()


# --------------------------------------------------------------------------- Kafka


def _kafka():
    import confluent_kafka

    return confluent_kafka


class KafkaSource:
    """A confluent-kafka consumer in a group; offsets committed explicitly, synchronously.

    `commit` commits, per partition, one past the last offset of the batch. A commit refused
    because the group rebalanced is logged, not raised: the partition's new owner receives
    those messages again, which at-least-once allows and the decision keys make harmless.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        config: dict[str, Any] | None = None,
    ) -> None:
        ck = _kafka()
        conf = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            **(config or {}),
        }
        self.topic = topic
        self._consumer = ck.Consumer(conf)
        self._consumer.subscribe([topic])

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        ck = _kafka()
        raw = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        out = []
        for m in raw:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise ck.KafkaException(err)
                if err.code() != ck.KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            out.append(
                SourceMessage(
                    m.value(),
                    f"{m.topic()}[{m.partition()}]@{m.offset()}",
                    (m.topic(), m.partition(), m.offset()),
                )
            )
        return out

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        ck = _kafka()
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = m.handle
            last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
        offsets = [ck.TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        if not offsets:
            return
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as e:
            err = e.args[0]
            if err.code() in (
                ck.KafkaError.REBALANCE_IN_PROGRESS,
                ck.KafkaError.ILLEGAL_GENERATION,
                ck.KafkaError.UNKNOWN_MEMBER_ID,
            ):
                log.warning("commit refused after a rebalance (%s); will be redelivered", err)
                return
            raise
        for tp in result or []:
            if tp.error is not None:
                log.warning("commit of %s[%d] failed: %s", tp.topic, tp.partition, tp.error)

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        ck = _kafka()
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = m.handle
            first[(topic, partition)] = min(offset, first.get((topic, partition), offset))
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(ck.TopicPartition(topic, partition, offset))
            except ck.KafkaException as e:  # revoked meanwhile: its new owner re-reads it
                log.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, e)

    def close(self) -> None:
        self._consumer.close()  # auto-commit is off: closing commits nothing


class KafkaSink:
    """An idempotent producer (acks=all); `flush` waits for every delivery report."""

    def __init__(
        self,
        bootstrap_servers: str,
        decisions_topic: str,
        dead_letter_topic: str,
        config: dict[str, Any] | None = None,
        flush_timeout_s: float = 30.0,
    ) -> None:
        ck = _kafka()
        conf = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            **(config or {}),
        }
        self.decisions_topic = decisions_topic
        self.dead_letter_topic = dead_letter_topic
        self.flush_timeout_s = flush_timeout_s
        self._producer = ck.Producer(conf)
        self._errors: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def _produce(self, topic: str, key: str | None, value: bytes | None, headers=None) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                return
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)

    def publish_decisions(self, decisions: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for key, decision in decisions:
            self._produce(self.decisions_topic, key, encode_decision(decision))
        self._producer.poll(0)

    def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for d in letters:
            headers = [("dlq.reason", d.reason.encode()), ("dlq.source", d.source.encode())]
            self._produce(self.dead_letter_topic, d.key, d.value, headers)
        self._producer.poll(0)

    def flush(self) -> None:
        remaining = self._producer.flush(self.flush_timeout_s)
        errors, self._errors = self._errors, []
        if remaining:
            raise SinkError(f"{remaining} messages not delivered within {self.flush_timeout_s}s")
        if errors:
            raise SinkError(f"{len(errors)} deliveries failed, first: {errors[0]}")

    def close(self) -> None:
        self._producer.flush(self.flush_timeout_s)


# --------------------------------------------------------------------------- Redis Streams


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisStreamSource:
    """XREADGROUP in a consumer group; XACK on commit; pending entries are delivered again.

    On its first poll the consumer reads back its own pending entries (a restart under the same
    name). Every `claim_interval_s` it also takes over (XAUTOCLAIM) entries that another
    consumer read but has not acknowledged for `claim_min_idle_ms` (a crashed consumer). An
    entry whose data was trimmed from the stream while pending is acknowledged and logged.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        group: str,
        consumer: str | None = None,
        field: str = "data",
        claim_min_idle_ms: int = 60_000,
        claim_interval_s: float | None = None,
        start_id: str = "0",
    ) -> None:
        import redis

        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._field = (field.encode(), field)  # bytes clients and decode_responses clients
        self._claim_cursor = "0-0"
        self.claim_min_idle_ms = claim_min_idle_ms
        self.claim_interval_s = (
            claim_min_idle_ms / 2000 if claim_interval_s is None else claim_interval_s
        )
        self._own_pending = True  # read back our own pending entries first
        self._last_claim = float("-inf")
        try:
            client.xgroup_create(stream, group, id=start_id, mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _wrap(self, entries: Iterable[tuple[Any, Any]], out: list[SourceMessage]) -> None:
        gone = []
        for entry_id, fields in entries:
            if not fields:  # deleted from the stream while pending
                gone.append(entry_id)
                continue
            value = fields.get(self._field[0], fields.get(self._field[1]))
            if isinstance(value, str):
                value = value.encode()
            out.append(SourceMessage(value, f"{self.stream}:{_s(entry_id)}", entry_id))
        if gone:
            log.warning("%d pending entries of %s were trimmed; acking", len(gone), self.stream)
            self.client.xack(self.stream, self.group, *gone)

    def poll(self, max_messages: int, timeout_s: float) -> list[SourceMessage]:
        out: list[SourceMessage] = []
        if self._own_pending:
            res = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=max_messages
            )
            entries = res[0][1] if res else []
            # Nothing new is read until every pending entry has been handed back once.
            self._own_pending = len(entries) >= max_messages
            self._wrap(entries, out)
            if out:
                return out
        now = time.monotonic()
        if now - self._last_claim >= self.claim_interval_s:
            self._last_claim = now
            res = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_min_idle_ms,
                start_id=self._claim_cursor,
                count=max_messages,
            )
            # The scan resumes where it stopped, so idle entries behind live ones are reached.
            self._claim_cursor = _s(res[0])
            self._wrap(res[1], out)
            if len(out) >= max_messages:
                return out
        deadline = time.monotonic() + timeout_s
        while len(out) < max_messages:
            block_ms = int((deadline - time.monotonic()) * 1000)
            if block_ms < 1:
                break
            res = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max_messages - len(out),
                block=block_ms,  # never 0: that would block forever
            )
            if not res:
                break
            self._wrap(res[0][1], out)
        return out

    def commit(self, messages: Sequence[SourceMessage]) -> None:
        ids = [m.handle for m in messages]
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, len(ids), 1000):
            pipe.xack(self.stream, self.group, *ids[i : i + 1000])
        pipe.execute()

    def rewind(self, messages: Sequence[SourceMessage]) -> None:
        self._own_pending = True  # unacknowledged, so they are in this consumer's pending list

    def close(self) -> None:
        pass  # the consumer stays in the group; its pending entries remain claimable


class RedisStreamSink:
    """XADD decisions (`transaction_id`, `data`) and dead letters; one pipeline per flush."""

    def __init__(
        self,
        client: Any,
        decisions_stream: str,
        dead_letter_stream: str,
        maxlen: int | None = None,
    ) -> None:
        self.client = client
        self.decisions_stream = decisions_stream
        self.dead_letter_stream = dead_letter_stream
        self.maxlen = maxlen
        self._pipe = client.pipeline(transaction=False)
        self._pending = 0

    def _xadd(self, stream: str, fields: dict[str, Any]) -> None:
        self._pipe.xadd(stream, fields, maxlen=self.maxlen, approximate=True)
        self._pending += 1

    def publish_decisions(self, decisions: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for key, decision in decisions:
            fields = {"transaction_id": key, "data": encode_decision(decision)}
            self._xadd(self.decisions_stream, fields)

    def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for d in letters:
            fields = {"data": d.value if d.value is not None else b"", "reason": d.reason}
            fields["source"] = d.source
            if d.key is not None:
                fields["transaction_id"] = d.key
            self._xadd(self.dead_letter_stream, fields)

    def flush(self) -> None:
        if not self._pending:
            return
        pipe, self._pipe, self._pending = self._pipe, self.client.pipeline(transaction=False), 0
        try:
            pipe.execute()
        except Exception as e:
            raise SinkError(f"XADD failed: {e}") from e

    def close(self) -> None:
        self.flush()


class RedisDecisionCache:
    """Decisions already made, one key per transaction with a TTL; SET NX GET: first wins.

    The TTL bounds the memory; it should exceed the longest redelivery delay (a consumer down
    that long, a Kafka group reset to an older offset).
    """

    def __init__(
        self, client: Any, prefix: str = "fraud:decided:", ttl_seconds: int = 7 * 86400
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        values = self.client.mget([self.prefix + k for k in keys])
        return {k: json.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def put_many(self, decisions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        keys = list(decisions)
        for k in keys:
            value = encode_decision(decisions[k])
            pipe.set(self.prefix + k, value, nx=True, ex=self.ttl_seconds, get=True)
        previous = pipe.execute()
        return {
            k: decisions[k] if old is None else json.loads(old)
            for k, old in zip(keys, previous, strict=True)
        }
