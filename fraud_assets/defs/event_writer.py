"""Writes a step's Dagster events from a thread of their own, in order, while the step computes.

A ranged batch run logs about ten events per batch, and storing one in PostgreSQL takes a few
round trips (most of them waiting on the server). Done inline, a half-year backfill waited on
the event log for about a quarter of its run. The writer thread makes every Dagster call of the
step while the step's own thread only computes, so the two never use the context at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType

_STOP = object()


class EventWriter:
    """`writer(fn)` queues a call that logs events; they run in queue order on one thread.

    Leaving the `with` block waits until every queued call has run, and raises the first error
    one of them raised (the step then fails as it would have inline).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="dagster-events", daemon=True)

    def __enter__(self) -> EventWriter:
        self._thread.start()
        return self

    def __call__(self, fn: Callable[[], None]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(fn)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None and error is None:
            raise self._error

    def _drain(self) -> None:
        while (fn := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    fn()
                except BaseException as e:  # noqa: BLE001 - handed to the step's thread
                    self._error = e
