"""A ranged run's events are logged from a thread of their own: in order, all of them, and a
failure to log one fails the step instead of vanishing with the thread."""

from __future__ import annotations

import threading

import pytest

from fraud_assets.defs.event_writer import EventWriter


def test_every_queued_call_runs_in_order_on_one_other_thread_before_the_block_ends():
    seen: list[tuple[int, str]] = []
    with EventWriter() as write:
        for n in range(500):
            write(lambda n=n: seen.append((n, threading.current_thread().name)))
    assert [n for n, _ in seen] == list(range(500))
    assert {name for _, name in seen} == {"dagster-events"}


def test_an_error_while_logging_is_raised_when_the_block_ends_and_later_calls_are_skipped():
    ran: list[int] = []

    def broken() -> None:
        raise ConnectionError("event log unreachable")

    with pytest.raises(ConnectionError, match="event log unreachable"), EventWriter() as write:
        write(lambda: ran.append(1))
        write(broken)
        write(lambda: ran.append(2))
    assert ran == [1]


def test_the_steps_own_error_wins_over_a_logging_error():
    def broken() -> None:
        raise ConnectionError("event log unreachable")

    with pytest.raises(ValueError, match="the step failed"), EventWriter() as write:
        write(broken)
        raise ValueError("the step failed")
