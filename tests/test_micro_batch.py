"""Micro-batching of concurrent single requests (`serving.micro_batch.MicroBatcher`).

What a caller must be able to rely on: each request gets the result of its own item, whatever
else was in its batch; nothing waits for a timer when the service is idle; a failing batch
fails only its own requests; batches never exceed `max_batch`.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.serving.micro_batch import MicroBatcher


class Recorder:
    """A scoring function that records the batches it was given (and can be held)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[str]:
        self.entered.set()
        self.gate.wait(5)
        self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ConnectionError(f"store down while scoring {self.fail_on}")
        return [f"scored {i}" for i in items]


async def queued() -> None:
    """Let the submissions created just before run up to their wait: asyncio runs the ready
    tasks in the order they were created, before this coroutine resumes, and `submit` queues
    its item before its first await. An ordering by the event loop, not by time."""
    await asyncio.sleep(0)


def test_an_idle_service_scores_a_request_at_once_as_a_batch_of_one():
    score = Recorder()

    async def main() -> str:
        batcher = MicroBatcher(score)
        try:
            return await asyncio.wait_for(batcher.submit(7), timeout=2)
        finally:
            batcher.close()

    assert asyncio.run(main()) == "scored 7"
    assert score.batches == [[7]]


def test_requests_arriving_while_a_batch_is_scored_share_the_next_batch():
    score = Recorder()
    score.gate.clear()  # hold the first batch in the thread

    async def main() -> list[str]:
        batcher = MicroBatcher(score, max_in_flight=1)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.get_running_loop().run_in_executor(None, score.entered.wait, 5)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await queued()
        score.gate.set()
        try:
            return await asyncio.gather(first, *rest)
        finally:
            batcher.close()

    assert asyncio.run(main()) == [f"scored {i}" for i in range(6)]
    assert score.batches == [[0], [1, 2, 3, 4, 5]]


def test_a_failing_batch_fails_only_its_own_requests():
    score = Recorder(fail_on=3)
    score.gate.clear()

    async def main() -> tuple[list[object], str]:
        batcher = MicroBatcher(score, max_in_flight=1)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.get_running_loop().run_in_executor(None, score.entered.wait, 5)
        doomed = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
        await queued()
        score.gate.set()
        results = await asyncio.gather(first, *doomed, return_exceptions=True)
        later = await batcher.submit(5)  # the next batch is unaffected
        batcher.close()
        return results, later

    results, later = asyncio.run(main())
    assert results[0] == "scored 0"
    assert all(isinstance(r, ConnectionError) and "scoring 3" in str(r) for r in results[1:])
    assert later == "scored 5"


def test_a_request_whose_client_left_does_not_disturb_its_batch():
    score = Recorder()
    score.gate.clear()

    async def main() -> list[str]:
        batcher = MicroBatcher(score, max_in_flight=1)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.get_running_loop().run_in_executor(None, score.entered.wait, 5)
        gone = asyncio.ensure_future(batcher.submit(1))
        stays = asyncio.ensure_future(batcher.submit(2))
        await queued()
        gone.cancel()
        score.gate.set()
        try:
            return await asyncio.gather(first, stays)
        finally:
            batcher.close()

    assert asyncio.run(main()) == ["scored 0", "scored 2"]
    assert score.batches == [[0], [1, 2]]  # still scored: it may already be recorded


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.integers(0, 10_000), min_size=1, max_size=200),
    max_batch=st.integers(1, 70),
    max_in_flight=st.integers(1, 4),
    waves=st.integers(1, 6),
)
def test_every_request_gets_its_own_result_and_no_batch_is_too_big(
    items, max_batch, max_in_flight, waves
):
    score = Recorder()

    async def main() -> list[str]:
        batcher = MicroBatcher(score, max_batch=max_batch, max_in_flight=max_in_flight)
        futures = []
        for k, item in enumerate(items):  # arrivals in `waves` bursts
            futures.append(asyncio.ensure_future(batcher.submit(item)))
            if k % max(1, len(items) // waves) == 0:
                await asyncio.sleep(0)
        try:
            return await asyncio.gather(*futures)
        finally:
            batcher.close()

    assert asyncio.run(main()) == [f"scored {i}" for i in items]
    assert sorted(i for batch in score.batches for i in batch) == sorted(items)
    assert max(len(batch) for batch in score.batches) <= max_batch


def test_sizes_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)
