"""Kafka transport of the stream worker: a confluent-kafka consumer and idempotent producer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fraud_assets.serving.stream.worker import DeadLetter, SinkError, SourceMessage, encode_decision

log = logging.getLogger("fraud_assets.serving.stream")


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
