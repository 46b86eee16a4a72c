"""Model selection by prequential validation, within a time budget (no Dagster, no MLflow).

Prequential validation, as the fraud-detection handbook does it: the newest labelled weeks are
the assessment folds; fold i's model is trained, exactly as production trains, on the data that
ends the day before its week (so its labels stop `delay_days` before it), and judged on that
week with the cards already known compromised left out (`backtest.backtest`). Every candidate
(a set of `TrainingConfig` settings: training-window length, class weighting, CatBoost depth,
learning rate, L2, bins, the amount's own bins) is scored on the same folds and rows; the
winner has the best mean of the selection metric (average precision by default). Candidates run
in a fixed order, the default settings first, until the time budget is spent: a candidate that
starts is finished, so the budget may be overrun by one candidate's time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fraud_assets.modeling.backtest import FoldResult, backtest, mean_of
from fraud_assets.modeling.training import DAY, TX_DATE, TrainingConfig

SEARCHED = (
    "window_days",
    "imbalance",
    "depth",
    "learning_rate",
    "l2_leaf_reg",
    "border_count",
    "amount_border_count",
)
"""The settings a candidate may change; anything else is the base config's."""

DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "window_days": (14, 28, 56),
    "imbalance": ("none", "class_weights"),
    "depth": (4, 6, 8),
    "learning_rate": (0.05, 0.1, 0.2),
    "l2_leaf_reg": (1.0, 3.0, 10.0),
    "border_count": (32, 64, 254),
    # tx_amount's own bins (0: border_count's): an amount limit needs a split right at it
    # (BENCHMARKS.md, issue 20: 64 -> 4 096 bins, average precision +0.011 on seed 0).
    "amount_border_count": (0, 1024, 4096),
}


@dataclass
class CandidateResult:
    number: int
    settings: dict[str, Any]  # the searched settings of this candidate
    folds: list[FoldResult]
    mean: dict[str, float]  # each metric averaged over the folds
    seconds: float


@dataclass
class SelectionResult:
    metric: str
    folds: int
    fold_starts: list[dt.date]
    candidates: list[CandidateResult] = field(default_factory=list)
    budget_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def winner(self) -> CandidateResult:
        """The candidate with the best mean metric (ties: the earlier one, the default first)."""
        scored = [c for c in self.candidates if not math.isnan(c.mean.get(self.metric, math.nan))]
        if not scored:
            raise ValueError(f"No candidate has a {self.metric} to compare by.")
        return max(scored, key=lambda c: (c.mean[self.metric], -c.number))


def candidates(
    grid: dict[str, Iterable[Any]] | None = None, base: TrainingConfig | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The base settings first, then every other combination of the grid in a seeded shuffle."""
    grid = {k: tuple(v) for k, v in (grid or DEFAULT_GRID).items()}
    unknown = set(grid) - set(SEARCHED)
    if unknown:
        raise ValueError(f"Cannot search {sorted(unknown)}; searchable: {list(SEARCHED)}")
    base = base or TrainingConfig()
    first = {k: _plain(getattr(base, k)) for k in grid}
    combos = [{}]
    for key, values in grid.items():
        combos = [{**c, key: v} for c in combos for v in values]
    rest = [c for c in combos if c != first]
    random.Random(seed).shuffle(rest)
    return [first, *rest]


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def fold_starts(
    data_end: dt.date, delay_days: int, folds: int, fold_days: int = 7
) -> list[dt.date]:
    """First days of the assessment folds: the newest `folds` × `fold_days` labelled days."""
    labels_end = data_end - delay_days * DAY
    first = labels_end - (folds * fold_days - 1) * DAY
    return [first + i * fold_days * DAY for i in range(folds)]


def select(
    features: pl.DataFrame,
    data_end: dt.date,
    base: TrainingConfig | None = None,
    grid: dict[str, Iterable[Any]] | None = None,
    folds: int = 3,
    fold_days: int = 7,
    budget_seconds: float = 600.0,
    metric: str = "average_precision",
    seed: int = 0,
    on_candidate: Callable[[CandidateResult], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> SelectionResult:
    """Score candidates on `folds` prequential folds until `budget_seconds` are spent.

    Only labels known at `data_end` are used (fold weeks end `delay_days` before it). A
    candidate whose window does not fit the data is recorded with NaN metrics, not raised.
    `on_candidate` sees each result as it finishes (e.g. to log an MLflow child run).
    """
    base = base or TrainingConfig()
    starts = fold_starts(data_end, base.delay_days, folds, fold_days)
    result = SelectionResult(metric, folds, starts, budget_seconds=budget_seconds)
    began = clock()
    first_day = features.select(TX_DATE.min()).item()
    for number, settings in enumerate(candidates(grid, base, seed)):
        if result.candidates and clock() - began >= budget_seconds:
            break
        config = dataclasses.replace(base, **settings)
        started = clock()
        needed = starts[0] - (config.window_days + config.validation_days + config.delay_days) * DAY
        if first_day is None or first_day > needed:
            fold_results, mean = [], {metric: math.nan}
        else:
            fold_results = backtest(
                features, config.window_days, config.delay_days, starts[0], fold_days, folds, config
            )
            mean = mean_of(fold_results)
        done = CandidateResult(number, settings, fold_results, mean, clock() - started)
        result.candidates.append(done)
        if on_candidate is not None:
            on_candidate(done)
    result.seconds = clock() - began
    return result


def winner_config(result: SelectionResult, base: TrainingConfig) -> TrainingConfig:
    """The base config with the winner's settings."""
    return dataclasses.replace(base, **result.winner.settings)
