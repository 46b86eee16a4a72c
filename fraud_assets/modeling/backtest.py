"""Walk-forward backtest: train as production would, then score the days that followed.

Fold i tests the days [test_start + i*test_days, + test_days). Its model is trained by
`train_model` on the data that ends the day before the test period, so its labels stop
`delay_days` before the test period, exactly what would have been known on that morning.

Cards already known compromised are left out of each test day's metrics, as the fraud-detection
handbook's protocol does: on the morning of day t the bank knows the labels of days up to
t - 1 - delay_days; a card with a fraud on one of the days from `known_from` (the first day of
the known window, `known_days` before the label gap) to t - 1 - delay_days is blocked, and the
model gets no credit for flagging it again. The set grows day by day through the test period.
`known_days` defaults to 7, the handbook's training window, so the test set is the same whatever
window the model itself trains on and candidates are compared on the same rows; None takes every
earlier fraud in the data (the bank's full memory, a stricter test). Card precision@k then
drops, per day, the cards detected on earlier test days (`metrics.CARD_PRECISION_DEFINITION`;
the strict variant is reported beside it). Predictions are still returned for every test row.

Investigator labels (`labels`: the service's label log as label events, each with the moment it
became known, `known_at_seconds`): a fold trained on the morning of its first test day also
takes the label-gap rows that a label known by then covers, with that label
(`known_labels.gap_rows_with_known_labels`), and a card with a fraud label known before a test
day counts as known compromised that day. A label known later is never used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import polars as pl

from fraud_assets.modeling.known_labels import gap_rows_with_known_labels
from fraud_assets.modeling.metrics import scenario_recall as metrics_scenario_recall
from fraud_assets.modeling.metrics import summary
from fraud_assets.modeling.training import (
    DAY,
    LABEL,
    TX_DATE,
    TrainingConfig,
    TrainingWindow,
    score,
    train_model,
)

REPORTED = (
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "card_precision_at_100_strict",
    "recall",
    "fpr",
    "recall_scenario_1",
    "recall_scenario_2",
    "recall_scenario_3",
)
"""The headline test metrics; `FoldResult.metrics` holds every key of `metrics.summary` and the
recall, at the model's threshold, of each fraud scenario of the simulator (1: amount above 220,
2: compromised terminal, 3: compromised card, amounts ×5), when `tx_fraud_scenario` is present."""

HANDBOOK_KNOWN_DAYS = 7


@dataclass
class FoldResult:
    fold: int
    test_start: dt.date
    test_end: dt.date  # inclusive
    window: TrainingWindow
    threshold: float
    best_iteration: int
    test_rows: int  # after leaving out known-compromised cards
    test_frauds: int
    excluded_cards: int
    excluded_rows: int
    metrics: dict[str, float]  # metrics.summary on the test rows at the model's threshold
    predictions: pl.DataFrame  # transaction_id, score, known_compromised: every test-day row
    investigator_rows: int = 0  # label-gap training rows from labels known by the fold's start


def backtest(
    features: pl.DataFrame,
    train_days: int,
    delay_days: int,
    test_start: dt.date,
    test_days: int,
    folds: int = 1,
    config: TrainingConfig | None = None,
    known_days: int | None = HANDBOOK_KNOWN_DAYS,
    labels: pl.DataFrame | None = None,
) -> list[FoldResult]:
    """Train and test `folds` consecutive periods, oldest first.

    `labels`: investigator label events (transaction_id, customer_id, fraud, known_at_seconds;
    times on the features' tx_time_seconds clock), used from when each became known.

    `train_days` and `delay_days` override the config's window_days and delay_days (the
    default config otherwise). Raises
    ValueError naming the dates when a test period has no rows or no fraud to judge by.
    """
    if folds < 1 or test_days < 1:
        raise ValueError(f"folds and test_days must be >= 1, got {folds} and {test_days}")
    config = dataclasses.replace(
        config or TrainingConfig(), window_days=train_days, delay_days=delay_days
    )
    if known_days is not None and known_days < 1:
        raise ValueError(f"known_days must be >= 1 or None, got {known_days}")
    day = TX_DATE
    has_labels = labels is not None and labels.height > 0 and features.height > 0
    if has_labels:
        assert labels is not None
        clock = _clock(features)
        first_known = (
            labels.filter(pl.col("fraud"))
            .group_by("customer_id")
            .agg(pl.col("known_at_seconds").min().alias("_known_fraud"))
        )
    results = []
    for i in range(folds):
        start = test_start + i * test_days * DAY
        end = start + (test_days - 1) * DAY
        history = features.filter(day < start)
        extra = None
        if has_labels:
            assert labels is not None
            gap_first = start - delay_days * DAY  # the days whose batch labels are not in yet
            extra = gap_rows_with_known_labels(
                history, labels, clock(gap_first), clock(start) - 1
            ).filter(day >= gap_first)
        trained = train_model(history, start - DAY, config, extra_train=extra)
        frauds_known = features.filter(pl.col(LABEL) == 1)
        if known_days is not None:
            known_from = start - (delay_days + known_days) * DAY
            frauds_known = frauds_known.filter(day >= known_from)
        first_fraud = frauds_known.group_by("customer_id").agg(first_fraud=day.min())
        test = (
            features.filter(day.is_between(start, end))
            .sort("tx_datetime", "transaction_id")
            .join(first_fraud, on="customer_id", how="left")
            # Known on the morning of day t: a fraud on or before t - 1 - delay (its label is in).
            .with_columns(
                known_compromised=(pl.col("first_fraud") <= day - (delay_days + 1) * DAY).fill_null(
                    False
                )
            )
            .drop("first_fraud")
        )
        if has_labels:  # or an investigator's fraud label known before the day began
            morning = pl.col("tx_datetime").dt.truncate("1d") - pl.lit(clock.origin)
            test = (
                test.join(first_known, on="customer_id", how="left", maintain_order="left")
                .with_columns(
                    known_compromised=pl.col("known_compromised")
                    | (pl.col("_known_fraud") < morning.dt.total_seconds()).fill_null(False)
                )
                .drop("_known_fraud")
            )
        if test.height == 0:
            raise ValueError(f"Fold {i}: no transactions in the test period {start}..{end}.")
        scores = score(trained, test)
        predictions = test.select("transaction_id", "known_compromised").with_columns(
            score=pl.Series(scores)
        )
        kept = test.with_columns(score=pl.Series(scores)).filter(~pl.col("known_compromised"))
        frauds = int(kept[LABEL].sum())
        if frauds == 0:
            raise ValueError(
                f"Fold {i}: no fraud in the test period {start}..{end} once cards known "
                f"compromised are left out ({kept.height} rows): nothing to judge."
            )
        metrics = summary(
            kept[LABEL].to_numpy(),
            kept["score"].to_numpy(),
            trained.threshold.threshold,
            day=kept.select(day).to_series(),
            card=kept["customer_id"],
            amount=kept["tx_amount"].to_numpy(),
        )
        metrics |= scenario_recall(kept, trained.threshold.threshold)
        results.append(
            FoldResult(
                fold=i,
                test_start=start,
                test_end=end,
                window=trained.window,
                threshold=trained.threshold.threshold,
                best_iteration=trained.best_iteration,
                test_rows=kept.height,
                test_frauds=frauds,
                excluded_cards=test.filter("known_compromised")["customer_id"].n_unique(),
                excluded_rows=test.height - kept.height,
                metrics=metrics,
                predictions=predictions.select("transaction_id", "score", "known_compromised"),
                investigator_rows=0 if extra is None else extra.height,
            )
        )
    return results


def scenario_recall(scored: pl.DataFrame, threshold: float) -> dict[str, float]:
    """`metrics.scenario_recall` of a frame with `score` and (maybe) `tx_fraud_scenario`."""
    if "tx_fraud_scenario" not in scored.columns:
        return {}
    return metrics_scenario_recall(
        scored["tx_fraud_scenario"].to_numpy(), scored["score"].to_numpy(), threshold
    )


def mean_and_spread(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """(mean, sample standard deviation) of each metric over runs (e.g. seeds); NaNs skipped."""
    out = {}
    for key in runs[0] if runs else []:
        values = [r[key] for r in runs if key in r and not math.isnan(r[key])]
        if not values:
            out[key] = (math.nan, math.nan)
            continue
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[key] = (mean, math.sqrt(var))
    return out


@dataclass(frozen=True)
class _Clock:
    """Dates on the features' tx_time_seconds clock (where known_at_seconds is counted)."""

    origin: dt.datetime

    def __call__(self, date: dt.date) -> int:
        return int((dt.datetime.combine(date, dt.time()) - self.origin).total_seconds())


def _clock(features: pl.DataFrame) -> _Clock:
    when, seconds = features.select("tx_datetime", "tx_time_seconds").row(0)
    return _Clock(when - dt.timedelta(seconds=int(seconds)))


def mean_of(folds: list[FoldResult]) -> dict[str, float]:
    """Each metric averaged over the folds; folds where it is NaN (undefined) are skipped."""
    keys = [k for k in folds[0].metrics if all(k in f.metrics for f in folds)] if folds else []
    out = {}
    for key in keys:
        values = [f.metrics[key] for f in folds if not math.isnan(f.metrics[key])]
        out[key] = sum(values) / len(values) if values else math.nan
    return out
