"""Choose the operating threshold that travels with a model, by a stated policy (docs/models.md).

Alerts are raised on `score >= threshold`. Candidates are the observed distinct scores plus "just
above the maximum" (flag nothing), so the constraint checked here is exactly the one that holds
when the threshold is applied to the same rows. One sort and cumulative sums: O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

from fraud_assets.modeling.metrics import (
    COST_PER_ALERT,
    as_labels,
    as_scores,
    expected_money,
    threshold_metrics,
)


class ThresholdPolicy(StrEnum):
    """How the operating threshold is chosen."""

    MAX_RECALL_AT_FPR = "max_recall_at_fpr"
    """Highest recall with FPR <= max_fpr (the default policy, docs/models.md)."""
    MAX_EXPECTED_MONEY = "max_expected_money"
    """Highest `expected_money` net: caught fraud amounts minus the cost of reviewing alerts."""


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold, the policy that chose it and the metrics it has on the rows it was
    chosen on (`threshold_metrics`, plus `money_*` keys when amounts were given)."""

    threshold: float
    policy: ThresholdPolicy
    metrics: dict[str, float]
    max_fpr: float | None = None


@dataclass(frozen=True)
class _Candidates:
    """Cumulative counts for every candidate threshold, highest threshold first.

    Index 0 is "flag nothing" (threshold just above the maximum score); index i >= 1 is the i-th
    highest distinct score, with the counts of all rows scoring at or above it.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    order: np.ndarray
    ends: np.ndarray  # position after the last sorted row of each distinct score


def _candidates(y: np.ndarray, s: np.ndarray) -> _Candidates:
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.flatnonzero(np.diff(s_sorted)) + 1  # a tie group ends where the score changes
    ends = np.append(ends, s.size)
    tp = np.concatenate([[0], np.cumsum(y_sorted)[ends - 1]])
    fp = np.concatenate([[0], ends]) - tp
    above_max = np.nextafter(s_sorted[0], np.inf)
    thresholds = np.concatenate([[above_max], s_sorted[ends - 1]])
    return _Candidates(thresholds, tp, fp, order, ends)


def choose_threshold(
    y_true: ArrayLike,
    score: ArrayLike,
    policy: ThresholdPolicy | str = ThresholdPolicy.MAX_RECALL_AT_FPR,
    max_fpr: float = 0.05,
    amount: ArrayLike | None = None,
    cost_per_alert: float = COST_PER_ALERT,
) -> ThresholdChoice:
    """Choose the threshold by `policy` on these rows.

    max_recall_at_fpr: the highest recall whose FPR <= max_fpr; among equal recall the highest
    threshold (fewest alerts). When no fraud can be caught within the bound (or there is none),
    the threshold is just above the maximum score, so nothing is flagged.
    max_expected_money: the highest `expected_money` net (needs `amount`); ties go to the highest
    threshold, and flagging nothing (net 0) wins when every threshold loses money.
    """
    policy = ThresholdPolicy(policy)
    y = as_labels(y_true)
    s = as_scores(score, y.size)
    if s.size == 0:
        raise ValueError("choose_threshold needs at least one row")
    cand = _candidates(y, s)
    if policy is ThresholdPolicy.MAX_RECALL_AT_FPR:
        if not 0.0 <= max_fpr <= 1.0:
            raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
        negatives = s.size - int(y.sum())
        fpr = cand.fp / negatives if negatives else np.zeros(cand.fp.size)
        # tp is monotone in the candidate index, so the first maximum is the highest threshold;
        # infeasible candidates get -1 so they never win and index 0 (nothing flagged) always fits.
        best = int(np.argmax(np.where(fpr <= max_fpr, cand.tp, -1)))
    else:
        if amount is None:
            raise ValueError("policy max_expected_money needs amount")
        amt = np.asarray(amount, dtype=np.float64)
        if amt.shape != y.shape:
            raise ValueError(f"amount must have shape {y.shape} like y_true, got {amt.shape}")
        saved = np.concatenate([[0.0], np.cumsum(np.where(y, amt, 0.0)[cand.order])[cand.ends - 1]])
        net = saved - cost_per_alert * (cand.tp + cand.fp)
        best = int(np.argmax(net))  # first maximum: highest threshold, "nothing" on a tie with 0
    threshold = float(cand.thresholds[best])
    metrics: dict[str, float] = dict(threshold_metrics(y, s, threshold))
    if amount is not None:
        money = expected_money(y, s, amount, threshold, cost_per_alert=cost_per_alert)
        metrics |= {f"money_{name}": value for name, value in money.items()}
    return ThresholdChoice(
        threshold=threshold,
        policy=policy,
        metrics=metrics,
        max_fpr=max_fpr if policy is ThresholdPolicy.MAX_RECALL_AT_FPR else None,
    )


DEFAULT_DAILY_BUDGET = 100  # cards an investigation team checks a day


def review_threshold_for_budget(
    score: ArrayLike,
    card: ArrayLike,
    day: ArrayLike,
    budget: int = DEFAULT_DAILY_BUDGET,
    block_threshold: float | None = None,
) -> float:
    """The lowest score at which, on these rows, the cards reaching it number at most `budget`
    a day on average: the review band [review, block) is sized to what investigators can check.

    A card counts once a day, at its highest score. Candidates are the observed per-day card
    maxima; the result never exceeds `block_threshold` (a review band above blocking is empty).
    """
    if budget < 1:
        raise ValueError("budget must be >= 1")
    s = as_scores(score, np.asarray(score).shape[0] if np.ndim(score) else 0)
    cards = np.asarray(card)
    days = np.asarray(day)
    if s.size == 0:
        return float(block_threshold) if block_threshold is not None else 1.0
    # Highest score per (day, card), then how many distinct days there are.
    order = np.lexsort((-s, cards, days))
    d, c, v = days[order], cards[order], s[order]
    first = np.ones(len(v), dtype=bool)
    first[1:] = (d[1:] != d[:-1]) | (c[1:] != c[:-1])
    maxima = np.sort(v[first])[::-1]
    n_days = len(np.unique(days))
    allowed = budget * n_days  # card-days the budget covers over the slice
    if allowed >= len(maxima):
        threshold = float(maxima[-1])
    else:
        # Strictly above the (allowed+1)-th highest maximum: ties never push the count over.
        threshold = float(np.nextafter(maxima[allowed], np.inf))
    if block_threshold is not None:
        threshold = min(threshold, float(block_threshold))
    return threshold
