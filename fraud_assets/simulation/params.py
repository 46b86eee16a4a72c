"""Every knob of the generative process (docs/simulator.md), with the reference-run defaults."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FraudScenarios:
    amount_threshold: float = 220.0  # scenario 1: an amount above this is fraud
    terminals_per_day: int = 2  # scenario 2: terminals compromised each day...
    terminal_window_days: int = 28  # ...for this many days, counting the day itself
    customers_per_day: int = 3  # scenario 3: customers compromised each day...
    customer_window_days: int = 14  # ...for this many days, counting the day itself
    customer_fraud_share: float = 1 / 3  # share of their transactions turned into fraud
    customer_amount_factor: float = 5.0  # and multiplied by this


@dataclass(frozen=True)
class DriftScenario:
    """A deliberate change of the process from `start_day` on (a day index, 0 = the start date).

    For producing drift on purpose (monitoring tests, demos). Days before `start_day` are exactly
    the days of the same run without drift; with `start_day=None` nothing changes at all.
    """

    start_day: int | None = None
    amount_factor: float = 1.0  # every customer's mean and std amount are multiplied by this
    tx_per_day_factor: float = 1.0  # every customer's mean transactions per day multiplied

    @property
    def enabled(self) -> bool:
        return self.start_day is not None

    def active(self, day: int) -> bool:
        return self.start_day is not None and day >= self.start_day


@dataclass(frozen=True)
class SimulationParams:
    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    start_date: dt.date = dt.date(2018, 4, 1)
    # Seconds and days in the file count from this date; defaults to start_date.
    origin_date: dt.date | None = None
    radius: float = 5.0
    seed: int = 0
    grid_size: float = 100.0
    mean_amount_range: tuple[float, float] = (5.0, 100.0)
    tx_per_day_range: tuple[float, float] = (0.0, 4.0)
    time_of_day_mean: float = 43_200.0
    time_of_day_std: float = 20_000.0
    first_transaction_id: int = 0
    scenarios: FraudScenarios = field(default_factory=FraudScenarios)
    drift: DriftScenario = field(default_factory=DriftScenario)

    def __post_init__(self) -> None:
        if self.customers < 1 or self.terminals < 1 or self.days < 1:
            raise ValueError("customers, terminals and days must all be at least 1")
        if self.radius <= 0:
            raise ValueError("radius must be positive")
        if self.drift.start_day is not None and self.drift.start_day < 0:
            raise ValueError("the drift start day must be 0 or later")
        if self.drift.amount_factor <= 0 or self.drift.tx_per_day_factor <= 0:
            raise ValueError("drift factors must be positive")
        origin = self.origin
        if origin > self.start_date:
            raise ValueError(f"origin date {origin} is after the start date {self.start_date}")

    @property
    def origin(self) -> dt.date:
        return self.origin_date or self.start_date

    def day_date(self, day: int) -> dt.date:
        return self.start_date + dt.timedelta(days=day)
