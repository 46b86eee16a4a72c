"""Champion–challenger review: which rows both models are judged on, and the promotion rule.

The review slice is the newest *labelled* days: the last `review_days` days before the label
gap. The challenger is trained on data that ends `review_days` earlier (`training_end`), so it
has never seen the review rows, neither for fitting, early stopping nor its threshold; an older
champion has not seen them either. Both are scored on exactly those rows and compared with a
paired bootstrap; the challenger is promoted only when the lower end of the interval of
(challenger − champion) is above zero, so a tie or a worse model never moves the alias.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.modeling.bootstrap import METRICS, BootstrapComparison, paired_bootstrap
from fraud_assets.modeling.training import DAY, LABEL, TX_DATE

MIN_RESAMPLES = 1000


@dataclass(frozen=True)
class ReviewConfig:
    review_days: int = 7
    delay_days: int = 7
    metric: str = "average_precision"
    n_resamples: int = MIN_RESAMPLES
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        if self.n_resamples < MIN_RESAMPLES:
            raise ValueError(f"n_resamples must be >= {MIN_RESAMPLES}, got {self.n_resamples}")
        if self.review_days < 1:
            raise ValueError(f"review_days must be >= 1, got {self.review_days}")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    comparison: BootstrapComparison | None  # None when there was no champion to compare with


def training_end(data_end: dt.date, config: ReviewConfig) -> dt.date:
    """The data end the challenger trains as of, so the review days stay unseen."""
    return data_end - config.review_days * DAY


def review_bounds(data_end: dt.date, config: ReviewConfig) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the newest labelled days."""
    last = data_end - config.delay_days * DAY
    return last - (config.review_days - 1) * DAY, last


def review_slice(features: pl.DataFrame, data_end: dt.date, config: ReviewConfig) -> pl.DataFrame:
    first, last = review_bounds(data_end, config)
    rows = features.filter(TX_DATE.is_between(first, last)).sort("transaction_id")
    frauds = int(rows[LABEL].sum()) if rows.height else 0
    if frauds == 0 or frauds == rows.height:
        raise ValueError(
            f"The review slice {first}..{last} has {rows.height} rows and {frauds} frauds: "
            "both classes are needed to compare models. Wait for more labelled data."
        )
    return rows


FIRST_MODEL = Decision(True, "first model: there is no champion yet", None)


def decide(
    y_true: np.ndarray,
    challenger_score: np.ndarray,
    champion_score: np.ndarray,
    config: ReviewConfig,
) -> Decision:
    comparison = paired_bootstrap(
        y_true,
        champion_score,
        challenger_score,
        metric=config.metric,
        n_resamples=config.n_resamples,
        confidence=config.confidence,
        seed=config.seed,
    )
    interval = (
        f"{config.metric} challenger {comparison.challenger:.4f} vs champion "
        f"{comparison.champion:.4f}, difference {comparison.difference:+.4f}, "
        f"{comparison.confidence:.0%} interval [{comparison.low:+.4f}, {comparison.high:+.4f}]"
    )
    if comparison.challenger_wins:
        return Decision(True, f"promoted: {interval}", comparison)
    return Decision(False, f"kept the champion: {interval} does not lie above 0", comparison)
