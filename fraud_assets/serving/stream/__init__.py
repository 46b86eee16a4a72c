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

from fraud_assets.serving.stream.kafka import KafkaSink, KafkaSource
from fraud_assets.serving.stream.redis_streams import (
    RedisDecisionCache,
    RedisStreamSink,
    RedisStreamSource,
)
from fraud_assets.serving.stream.worker import (
    DATA_ERRORS,
    BatchScorer,
    BatchStats,
    DeadLetter,
    DecisionCache,
    MalformedMessage,
    Sink,
    SinkError,
    Source,
    SourceMessage,
    StreamWorker,
    decode_transaction,
    encode_decision,
    tx_key,
)

__all__ = [
    "DATA_ERRORS",
    "BatchScorer",
    "BatchStats",
    "DeadLetter",
    "DecisionCache",
    "KafkaSink",
    "KafkaSource",
    "MalformedMessage",
    "RedisDecisionCache",
    "RedisStreamSink",
    "RedisStreamSource",
    "Sink",
    "SinkError",
    "Source",
    "SourceMessage",
    "StreamWorker",
    "decode_transaction",
    "encode_decision",
    "tx_key",
]
