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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fraud_assets.modeling.bootstrap import METRICS, BootstrapComparison, paired_bootstrap
from fraud_assets.modeling.training import DAY, LABEL, TX_DATE

if TYPE_CHECKING:  # MLflow loads where the registry is used
    from fraud_assets.modeling.registry import ModelRegistry

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


# -- one review, from the registry's aliases to the decision ----------------------------------


class ReviewError(Exception):
    """A review that cannot be made (nothing to review, not enough labelled rows)."""


class NoChallengerError(ReviewError):
    """No model version carries the alias `challenger`."""


class ReviewDataError(ReviewError):
    """The review slice cannot compare models (for example, no fraud in it)."""


ALREADY_CHAMPION = Decision(False, "the challenger is the champion already", None)


@dataclass(frozen=True)
class ReviewOutcome:
    """What a review decided and on what; `apply_review` acts on it."""

    decision: Decision
    challenger_version: int
    champion_version: int | None  # the champion before the review
    rows: int | None = None  # rows both models were scored on (None: nothing compared)
    window: tuple[dt.date, dt.date] | None = None

    @property
    def unchanged(self) -> bool:
        return self.decision is ALREADY_CHAMPION

    @property
    def verdict(self) -> str:
        return "promoted" if self.decision.promote else "not promoted"

    def tags(self) -> dict[str, str]:
        """What the challenger's model version records about its review."""
        result = self.decision.comparison
        tags = {
            "review_decision": self.verdict,
            "review_reason": self.decision.reason,
            "review_champion_version": str(self.champion_version or "none"),
        }
        if result is not None:
            tags |= {
                "review_metric": result.metric,
                "review_champion_score": f"{result.champion:.6f}",
                "review_challenger_score": f"{result.challenger:.6f}",
                "review_interval": f"[{result.low:.6f}, {result.high:.6f}]",
            }
        return tags

    def metadata(self) -> dict[str, object]:
        """The figures a review shows (plain values; the asset adds the champion after it)."""
        metadata: dict[str, object] = {
            "decision": self.verdict,
            "reason": self.decision.reason,
            "challenger_version": self.challenger_version,
            "champion_version_before": self.champion_version or "none",
        }
        result = self.decision.comparison
        if result is not None and self.rows is not None and self.window is not None:
            metadata |= {
                "metric": result.metric,
                "champion_score": result.champion,
                "challenger_score": result.challenger,
                "difference": result.difference,
                "interval_low": result.low,
                "interval_high": result.high,
                "confidence": result.confidence,
                "n_resamples": result.n_resamples,
                "review_window": f"{self.window[0]} .. {self.window[1]}",
                "dagster/row_count": self.rows,
            }
        return metadata


FeatureSource = Callable[[int], tuple[pl.DataFrame, dt.date]]


def review_challenger(
    registry: ModelRegistry, config: ReviewConfig, features_for: FeatureSource
) -> ReviewOutcome:
    """Score champion and challenger on the newest labelled rows and decide (nothing moves yet).

    `features_for(days)` gives the newest `days` of labelled feature rows and the newest date
    (`fraud_assets.batch.training_data.latest_features` over the lake).
    """
    challenger = registry.challenger()
    if challenger is None:
        raise NoChallengerError("No model version has the alias `challenger`: train one first.")
    champion = registry.champion()
    if champion is not None and champion.version == challenger.version:
        return ReviewOutcome(ALREADY_CHAMPION, challenger.version, champion.version)
    if champion is None:
        return ReviewOutcome(FIRST_MODEL, challenger.version, None)
    features, data_end = features_for(config.review_days + config.delay_days)
    try:
        rows = review_slice(features, data_end, config)
    except ValueError as e:
        raise ReviewDataError(str(e)) from e
    decision = decide(
        rows[LABEL].to_numpy(),
        _scores(registry, challenger.version, rows),
        _scores(registry, champion.version, rows),
        config,
    )
    window = review_bounds(data_end, config)
    return ReviewOutcome(decision, challenger.version, champion.version, rows.height, window)


def apply_review(registry: ModelRegistry, outcome: ReviewOutcome) -> None:
    """Move the `champion` alias when the review says so, and record the review on the version."""
    if outcome.decision.promote:
        registry.promote(outcome.challenger_version, outcome.decision.reason)
    registry.tag(outcome.challenger_version, outcome.tags())


def _scores(registry: ModelRegistry, version: int, rows: pl.DataFrame) -> np.ndarray:
    from fraud_assets.modeling.training import score

    model, _ = registry.load(version)
    return score(model, rows)
