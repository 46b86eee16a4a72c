"""Play investigators over a simulated period and measure what their feedback changes.

Each test day, in order:
  1. the day's transactions are scored by the current model; with feedback on, their feedback
     features come from the labels recorded so far (`features.feedback`, the online rule);
  2. the queue: per card its highest score that day, cards confirmed fraud in the last
     `blocked_days` left out (blocked once caught, reissued after), the top k by score;
  3. the investigators answer from the simulator's truth: a card with a fraud that day is
     confirmed fraud, the others genuine; as at the desk, the decision labels every transaction
     of the card that day, known at the end of the day (the newest transaction time of the day);
  4. every `retrain_every` days the model is retrained on the data up to that day (batch labels
     behind the delay); with feedback on, it also takes the feedback features and the gap rows
     the investigators have labelled (`modeling.known_labels`).
Card precision@k of a day = confirmed-fraud cards among the k checked / k.

Three variants: `static` (one model, no feedback), `retrain` (retraining on batch labels only)
and `feedback` (feedback features + investigator labels + retraining).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from fraud_assets.features.feedback import FEEDBACK_FEATURES, feedback_features
from fraud_assets.features.spec import SECONDS_PER_DAY
from fraud_assets.modeling.known_labels import gap_rows_with_known_labels
from fraud_assets.modeling.training import TrainingConfig, score, train_model

VARIANTS = ("static", "retrain", "feedback")
LABEL_SCHEMA = {
    "transaction_id": pl.Int64,
    "customer_id": pl.Int64,
    "terminal_id": pl.Int64,
    "tx_time_seconds": pl.Int64,
    "fraud": pl.Boolean,
    "known_at_seconds": pl.Int64,
}


@dataclass(frozen=True)
class LoopConfig:
    variant: str = "feedback"
    k: int = 100
    retrain_every: int = 7
    blocked_days: int = 14  # a confirmed card is out of the queue this long (then reissued)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


@dataclass
class DayResult:
    date: dt.date
    checked: int
    confirmed: int
    precision: float  # confirmed / k
    labels: int  # transactions labelled by the day's decisions


@dataclass
class LoopResult:
    variant: str
    days: list[DayResult]
    retrains: int

    @property
    def precision(self) -> float:
        return sum(d.precision for d in self.days) / len(self.days) if self.days else float("nan")


def _with_feedback(rows: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    extra = feedback_features(rows, labels)
    return pl.concat([rows.drop(FEEDBACK_FEATURES, strict=False), extra], how="horizontal")


def run_loop(
    features: pl.DataFrame, first_test_day: dt.date, last_test_day: dt.date, config: LoopConfig
) -> LoopResult:
    """`features`: the baseline feature table (with `tx_fraud`) of the whole period."""
    feedback = config.variant == "feedback"
    training = dataclasses.replace(config.training, feedback_features=feedback)
    date = pl.col("tx_datetime").dt.date()
    frame = features.sort("tx_time_seconds", "transaction_id").with_columns(_date=date)
    labels = pl.DataFrame(schema=LABEL_SCHEMA)
    confirmed_on: dict[int, dt.date] = {}  # card -> day it was last confirmed fraud

    def train(end: dt.date):
        history = frame.filter(pl.col("_date") <= end)
        extra = None
        if feedback and labels.height == 0:
            # No investigator has decided anything yet: the feedback columns would be all zero,
            # so the first model is the other variants' first model (the same day-one queue).
            return train_model(history, end, config.training)
        if feedback:
            history = _with_feedback(history, labels)
            known_by = int(history["tx_time_seconds"].max())
            gap_start = known_by - training.delay_days * SECONDS_PER_DAY
            gap_start -= gap_start % SECONDS_PER_DAY  # whole days
            extra = gap_rows_with_known_labels(history, labels, gap_start + 1, known_by)
            extra = extra.filter(pl.col("_date") > end - dt.timedelta(days=training.delay_days))
        return train_model(history, end, training, extra_train=extra)

    model = train(first_test_day - dt.timedelta(days=1))
    retrains = 0
    out: list[DayResult] = []
    day = first_test_day
    n = 0
    while day <= last_test_day:
        rows = frame.filter(pl.col("_date") == day)
        if rows.height == 0:
            day += dt.timedelta(days=1)
            continue
        if feedback:
            rows = _with_feedback(rows, labels)
        rows = rows.with_columns(_score=pl.Series(score(model, rows)))
        blocked = [c for c, d in confirmed_on.items() if (day - d).days <= config.blocked_days]
        per_card = (
            rows.group_by("customer_id")
            .agg(pl.col("_score").max(), pl.col("tx_fraud").max().alias("_fraud"))
            .filter(~pl.col("customer_id").is_in(blocked))
            .sort(["_score", "customer_id"], descending=[True, False])
            .head(config.k)
        )
        hits = int(per_card["_fraud"].sum())
        frauds = set(per_card.filter(pl.col("_fraud") == 1)["customer_id"].to_list())
        confirmed_on.update(dict.fromkeys(frauds, day))
        decided = rows.filter(pl.col("customer_id").is_in(per_card["customer_id"].to_list()))
        known_at = int(rows["tx_time_seconds"].max())
        new = decided.select(
            "transaction_id",
            "customer_id",
            "terminal_id",
            "tx_time_seconds",
            pl.col("customer_id").is_in(list(frauds)).alias("fraud"),
            pl.lit(known_at, dtype=pl.Int64).alias("known_at_seconds"),
        ).cast(LABEL_SCHEMA)  # type: ignore[arg-type]
        labels = pl.concat([labels, new])
        out.append(DayResult(day, per_card.height, hits, hits / config.k, new.height))
        n += 1
        if config.variant != "static" and n % config.retrain_every == 0 and day < last_test_day:
            model = train(day)
            retrains += 1
        day += dt.timedelta(days=1)
    return LoopResult(config.variant, out, retrains)
