"""Redis transport of the stream worker (Streams with a consumer group) and the decision cache."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

from fraud_assets.serving.stream.worker import DeadLetter, SinkError, SourceMessage, encode_decision

log = logging.getLogger("fraud_assets.serving.stream")


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
