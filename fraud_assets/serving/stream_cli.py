"""`fraud stream`: run the stream worker (Kafka or Redis Streams) until SIGINT/SIGTERM.

Registered on the `fraud` app as a command: `app.command("stream")(stream)`. The scorer is the
REST API's, built by the same wiring from the FRAUD_* environment (`fraud_assets.serving.wiring.
build_scorer(ServiceSettings())`: registry champion, online feature store at FRAUD_REDIS_URL,
rules, origin), imported only when the command runs; the web module is never imported. The
API's `ModelPoller` re-reads the registry alias every FRAUD_MODEL_POLL_SECONDS; until a model
is loaded, batches fail with ModelNotReady and are retried (nothing is skipped or committed).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fraud_assets.serving.stream import (
    BatchStats,
    KafkaSink,
    KafkaSource,
    RedisDecisionCache,
    RedisStreamSink,
    RedisStreamSource,
    StreamWorker,
)

if TYPE_CHECKING:  # the scorer's imports are paid only when the command runs
    from fraud_assets.serving.wiring import ModelPoller

log = logging.getLogger("fraud_assets.serving.stream")


class Transport(StrEnum):
    kafka = "kafka"
    redis = "redis"


def _build_scorer() -> tuple[Any, ModelPoller]:
    """The API's scorer from the environment, and the shared poller that hot-swaps its model."""
    from fraud_assets.serving.settings import ServiceSettings
    from fraud_assets.serving.wiring import ModelPoller, build_scorer

    settings = ServiceSettings()
    scorer = build_scorer(settings, warm=True)  # in-process store: from the lake
    source = scorer.model_source
    poller = ModelPoller(source, settings.model_poll_seconds)
    if source.registry is not None:
        poller.poll_once()  # a model before the first batch, when the registry has one
        poller.start()
    if not source.ready:
        log.warning("stream: no model loaded yet (%s); batches wait for one", source.status())
    return scorer, poller


class ProgressLog:
    """Calls `emit` with one throughput line at most every `every_s` seconds."""

    def __init__(self, totals: BatchStats, every_s: float, emit=log.info) -> None:
        self.totals = totals
        self.every_s = every_s
        self.emit = emit
        self._t0 = self._last_t = time.monotonic()
        self._last_n = 0

    def __call__(self, _batch: BatchStats | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_t < self.every_s:
            return
        n = self.totals.received
        rate = (n - self._last_n) / max(now - self._last_t, 1e-9)
        self.emit(
            f"stream: {n} received, {self.totals.decided} decided, "
            f"{self.totals.dead_lettered} dead-lettered, {self.totals.from_cache} from cache; "
            f"{rate:,.0f} msg/s over the last {now - self._last_t:.1f}s "
            f"({n / max(now - self._t0, 1e-9):,.0f} msg/s overall)"
        )
        self._last_t, self._last_n = now, n


def stream(
    transport: Annotated[
        Transport, typer.Option(help="Message broker: Kafka (confluent-kafka) or Redis Streams.")
    ] = Transport.kafka,
    bootstrap_servers: Annotated[
        str, typer.Option(help="Kafka bootstrap servers, host:port[,host:port...].")
    ] = "127.0.0.1:9092",
    redis_url: Annotated[
        str,
        typer.Option(
            envvar="FRAUD_REDIS_URL",
            help="Redis URL: the streams with --transport redis, and the decided-transaction "
            "cache with either transport (unless --no-dedup).",
        ),
    ] = "redis://127.0.0.1:6379/0",
    input_topic: Annotated[
        str, typer.Option(help="Topic (Kafka) or stream key (Redis) of raw transactions, JSON.")
    ] = "transactions",
    output_topic: Annotated[
        str, typer.Option(help="Topic or stream the decisions go to, keyed by transaction id.")
    ] = "decisions",
    dead_letter_topic: Annotated[
        str, typer.Option(help="Topic or stream for malformed messages, with the reason.")
    ] = "transactions-dead-letter",
    group: Annotated[
        str, typer.Option(help="Consumer group; workers in one group share the input.")
    ] = "fraud-stream",
    consumer_name: Annotated[
        str | None,
        typer.Option(
            help="Redis consumer name, stable across restarts so pending entries are read "
            "back (default: host-pid)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Most messages scored in one batch (one score_many call).")
    ] = 500,
    max_wait_ms: Annotated[
        int, typer.Option(min=0, help="Longest wait for a batch to fill, in milliseconds.")
    ] = 50,
    claim_min_idle_ms: Annotated[
        int,
        typer.Option(
            min=1,
            help="Redis: take over another consumer's unacknowledged entries after this idle time.",
        ),
    ] = 60_000,
    dedup: Annotated[
        bool,
        typer.Option(
            help="Keep each decision in Redis (SET NX with a TTL) so a redelivered transaction "
            "is re-published, not re-scored."
        ),
    ] = True,
    dedup_ttl_hours: Annotated[
        float, typer.Option(min=0.01, help="How long decided transactions are remembered.")
    ] = 168.0,
    log_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between progress/throughput log lines.")
    ] = 10.0,
) -> None:
    """Consume raw transactions, publish fraud decisions; at-least-once, until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import redis

    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("stream: %s received, finishing the batch in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    scorer, poller = _build_scorer()  # before joining a consumer group: it can take a while
    r = redis.Redis.from_url(redis_url) if (dedup or transport is Transport.redis) else None
    if transport is Transport.kafka:
        source: Any = KafkaSource(bootstrap_servers, input_topic, group)
        sink: Any = KafkaSink(bootstrap_servers, output_topic, dead_letter_topic)
    else:
        source = RedisStreamSource(
            r, input_topic, group, consumer=consumer_name, claim_min_idle_ms=claim_min_idle_ms
        )
        sink = RedisStreamSink(r, output_topic, dead_letter_topic)
    decided = RedisDecisionCache(r, ttl_seconds=int(dedup_ttl_hours * 3600)) if dedup else None
    worker = StreamWorker(
        source, sink, scorer, batch_size=batch_size, max_wait_ms=max_wait_ms,
        decided=decided,
    )  # fmt: skip

    progress = ProgressLog(worker.totals, log_every)
    log.info(
        "stream: %s %s -> %s (dead letters: %s), group %s, batch %d, wait %d ms",
        transport.value, input_topic, output_topic, dead_letter_topic, group, batch_size,
        max_wait_ms,
    )  # fmt: skip
    try:
        worker.run(stop, on_batch=progress)
    finally:
        stop.set()
        poller.stop()
        progress(force=True)
        source.close()
        sink.close()
