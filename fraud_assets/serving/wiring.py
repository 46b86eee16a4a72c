"""Assembly shared by the API and the stream worker: the Redis client, the scorer the settings
describe, and the background poll that hot-swaps the champion. No web framework here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fraud_assets.serving.feedback_state import (
    FeedbackState,
    RedisFeedbackState,
    replay_label_log,
)
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import InMemoryFeatureStore, OnlineFeatureStore
from fraud_assets.serving.rules import RuleSet
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings

log = logging.getLogger(__name__)


def redis_client(url: str, timeout_seconds: float = 0.5) -> Any:
    """A Redis client that fails fast: bounded socket timeouts and one quick retry.

    redis-py's default retry policy backs off for seconds on a refused connection, far beyond
    the 1 s latency budget; a request should rather get its 503 at once and be retried.
    """
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        health_check_interval=30,
    )


def build_scorer(
    settings: ServiceSettings, warm: bool = False, emit: Callable[[str], None] | None = None
) -> Scorer:
    """The scorer the settings describe: Redis or in-process store (the online features and the
    feedback state alike), registry-backed model.

    `warm`: an in-process store is loaded from the lake first (FRAUD_WARM_START), printing a
    progress line and the time it took; a Redis store holds what `online_feature_state`
    published. `emit` receives the warm start's progress lines (default: the log).
    """
    from fraud_assets.privacy import Pseudonymizer

    store: OnlineFeatureStore
    feedback: FeedbackState | RedisFeedbackState
    if settings.redis_url:
        from fraud_assets.serving.online_features import RedisFeatureStore

        client = redis_client(settings.redis_url, settings.redis_timeout_seconds)
        store = RedisFeatureStore(
            client, prefix=settings.redis_prefix, max_skew_seconds=settings.max_clock_skew_seconds
        )
        # Shared by every worker and the stream worker: a decision taken through one process
        # changes the feedback features the others compute.
        feedback = RedisFeedbackState(client, prefix=settings.redis_prefix)
    else:
        feedback = FeedbackState()
        store = InMemoryFeatureStore(max_skew_seconds=settings.max_clock_skew_seconds)
        if warm and settings.warm_start:
            from fraud_assets.online_state.publish import warm_start

            warm_start(store, settings.lake, emit=emit or log.info, origin=settings.origin)
            # The in-process feedback state comes back from the label log (Redis keeps its own).
            replayed = replay_label_log(feedback, settings.label_log_dir)
            (emit or log.info)(f"feedback state: {replayed} labels from the label log")
    return Scorer(
        store=store,
        model_source=ModelSource.from_settings(settings),
        rules=RuleSet.from_settings(settings),
        pseudonymizer=Pseudonymizer(),
        origin=settings.origin_date,
        label_log=LabelLog(settings.label_log_dir),
        feedback_state=feedback,
    )


class ModelPoller:
    """Re-reads the registry alias every `interval` seconds in a daemon thread (hot swap).

    One loop for the API and the stream worker. `on_poll(swapped)` runs after every poll (the
    API syncs its metrics and freezes a new model's objects out of the collector's way). A
    failed poll is logged and retried at the next interval: the last good model keeps serving.
    """

    def __init__(
        self,
        source: ModelSource,
        interval: float,
        on_poll: Callable[[bool], None] | None = None,
    ) -> None:
        self.source = source
        self.interval = interval
        self.on_poll = on_poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        try:
            swapped = bool(self.source.refresh())
        except Exception:  # noqa: BLE001 - refresh reports registry errors itself; never die
            log.exception("model refresh crashed")
            swapped = False
        if self.on_poll is not None:
            try:
                self.on_poll(swapped)
            except Exception:  # noqa: BLE001 - a metrics hiccup must not stop the polling
                log.exception("model poll callback failed")
        return swapped

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def start(self) -> ModelPoller:
        """Start polling (the first poll at once) unless the source has no registry."""
        if self.source.registry is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-refresh", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
