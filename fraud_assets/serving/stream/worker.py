"""The stream worker loop, its protocols and the message codec (transports: `kafka.py`,
`redis_streams.py`). The delivery and idempotence rules are in the package docstring."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("fraud_assets.serving.stream")

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
