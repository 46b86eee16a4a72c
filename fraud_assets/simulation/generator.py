"""Day-by-day transaction generation: vectorised per day, state carried only for compromises.

Memory stays flat in the number of days: a day is generated, handed out and dropped; what survives
between days is the profiles, the RNG and the open compromise windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.simulation.params import SimulationParams
from fraud_assets.simulation.profiles import Profiles, make_profiles

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SimulatedDay:
    day: int  # index since the start date
    date: dt.date
    # Raw-format columns plus `base_amount` (amount before scenario 3) for checking the rules.
    frame: pl.DataFrame
    compromised_terminals: np.ndarray  # active on this day
    compromised_customers: np.ndarray  # active on this day
    newly_compromised_terminals: np.ndarray  # drawn on this day
    newly_compromised_customers: np.ndarray  # drawn on this day


class _Windows:
    """Items compromised on a day stay compromised for `length` days, that day included."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.started: list[tuple[int, np.ndarray]] = []

    def add(self, day: int, items: np.ndarray) -> None:
        self.started.append((day, items))
        self.started = [(d, i) for d, i in self.started if d > day - self.length]

    def active(self) -> np.ndarray:
        if not self.started:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate([i for _, i in self.started]))


class TransactionSimulator:
    def __init__(self, params: SimulationParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.profiles: Profiles = make_profiles(params, self.rng)
        self._terminal_windows = _Windows(params.scenarios.terminal_window_days)
        self._customer_windows = _Windows(params.scenarios.customer_window_days)
        self._next_id = params.first_transaction_id
        self._origin_offset = (params.start_date - params.origin).days * SECONDS_PER_DAY

    def days(self) -> Iterator[SimulatedDay]:
        for day in range(self.params.days):
            yield self._simulate_day(day)

    def _simulate_day(self, day: int) -> SimulatedDay:
        p, prof, rng = self.params, self.profiles, self.rng
        sc = p.scenarios

        # Compromises are drawn first, so a day's draws come in a fixed order.
        new_terminals = rng.choice(
            p.terminals, min(sc.terminals_per_day, p.terminals), replace=False
        )
        new_customers = rng.choice(
            p.customers, min(sc.customers_per_day, p.customers), replace=False
        )
        self._terminal_windows.add(day, new_terminals)
        self._customer_windows.add(day, new_customers)
        bad_terminals = self._terminal_windows.active()
        bad_customers = self._customer_windows.active()

        # The drift scenario scales the process, never adds draws: the RNG stream stays aligned.
        drifting = p.drift.active(day)
        tx_per_day = prof.tx_per_day * p.drift.tx_per_day_factor if drifting else prof.tx_per_day
        counts = rng.poisson(tx_per_day)
        counts[prof.degree == 0] = 0  # a customer with no terminal in reach cannot pay anywhere
        customer = np.repeat(np.arange(p.customers, dtype=np.int64), counts)

        # Time of day ~ Normal, truncated to whole seconds; draws outside the day are dropped.
        seconds = rng.normal(p.time_of_day_mean, p.time_of_day_std, customer.size).astype(np.int64)
        inside = (seconds > 0) & (seconds < SECONDS_PER_DAY)
        customer, seconds = customer[inside], seconds[inside]
        n = customer.size

        mean, std = prof.mean_amount[customer], prof.std_amount[customer]
        if drifting:
            mean, std = mean * p.drift.amount_factor, std * p.drift.amount_factor
        amount = rng.normal(mean, std)
        negative = amount < 0
        amount[negative] = rng.uniform(0, 2 * mean[negative])
        amount = np.round(amount, 2)

        pick = (rng.random(n) * prof.degree[customer]).astype(np.int64)
        terminal = prof.reachable[prof.offsets[customer] + pick].astype(np.int64)

        order = np.argsort(seconds, kind="stable")
        customer, seconds, amount, terminal = (
            customer[order],
            seconds[order],
            amount[order],
            terminal[order],
        )

        scenario = np.zeros(n, dtype=np.int8)
        scenario[amount > sc.amount_threshold] = 1
        scenario[np.isin(terminal, bad_terminals)] = 2
        base_amount = amount.copy()
        of_bad_customer = np.flatnonzero(np.isin(customer, bad_customers))
        chosen = of_bad_customer[rng.random(of_bad_customer.size) < sc.customer_fraud_share]
        amount[chosen] = np.round(amount[chosen] * sc.customer_amount_factor, 2)
        scenario[chosen] = 3

        since_origin = self._origin_offset + day * SECONDS_PER_DAY + seconds
        day_start = dt.datetime.combine(p.day_date(day), dt.time())
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n

        frame = pl.DataFrame(
            {
                "transaction_id": ids,
                "tx_datetime": (
                    np.datetime64(day_start, "s") + seconds.astype("timedelta64[s]")
                ).astype("datetime64[ms]"),
                "customer_id": customer,
                "terminal_id": terminal,
                "tx_amount": amount,
                "tx_time_seconds": since_origin,
                "tx_time_days": since_origin // SECONDS_PER_DAY,
                "tx_fraud": (scenario > 0).astype(np.int8),
                "tx_fraud_scenario": scenario,
                "base_amount": base_amount,
            }
        )
        return SimulatedDay(
            day, p.day_date(day), frame, bad_terminals, bad_customers, new_terminals, new_customers
        )
