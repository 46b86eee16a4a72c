"""Fraud-detection metrics of docs/models.md on plain arrays (no Dagster, no MLflow).

Ranking metrics (AUC ROC, average precision, card precision@k) judge the score itself; threshold
metrics and expected money judge the operating point that travels with the model. Every function
takes array-likes of equal length: `y_true` holds 0/1 (or bool) labels, `score` finite floats where
higher means "more likely fraud".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

F_BETA = 2.5
"""β of the F-beta score: recall weighs 2.5× precision, since a missed fraud costs far more than
an analyst reviewing a false alert."""

COST_PER_ALERT = 5.0
"""Cost, in the currency of `tx_amount`, of one analyst review of an alert (true or false). A
stated assumption of the money metric, not a measured figure; callers may pass their own."""


def as_labels(y_true: ArrayLike) -> np.ndarray:
    """Labels as a bool array; anything but 0/1 is refused so a probability is never a label."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("y_true must hold only 0/1 (or bool) labels")
        y = y.astype(bool)
    return y


def as_scores(score: ArrayLike, n: int) -> np.ndarray:
    """Scores as finite float64 of length n: NaN would silently sort anywhere."""
    s = np.asarray(score, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"score must have shape ({n},) like y_true, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score must be finite (no NaN or inf)")
    return s


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def auc_roc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve; NaN when y_true has one class (a slice with no fraud is common)."""
    y = as_labels(y_true)
    s = as_scores(score, y.size)
    return float(roc_auc_score(y, s)) if _both_classes(y) else math.nan


def average_precision(y_true: ArrayLike, score: ArrayLike) -> float:
    """Average precision (area under the precision–recall curve, step-wise, ties grouped).

    Preferred to AUC ROC under heavy class imbalance; NaN when y_true has one class.
    """
    y = as_labels(y_true)
    s = as_scores(score, y.size)
    return float(average_precision_score(y, s)) if _both_classes(y) else math.nan


def _series(name: str, values: Any) -> pl.Series:
    """A named Polars series; object arrays (e.g. of `datetime.date`) go through a list."""
    if isinstance(values, pl.Series):
        return values.rename(name)
    if isinstance(values, np.ndarray) and values.dtype == object:
        return pl.Series(name, values.tolist())
    return pl.Series(name, values)


CARD_PRECISION_DEFINITION = (
    "card precision@k, handbook definition: per test day the k highest-scored cards are checked; "
    "cards detected (fraudulent and in the top k) on an earlier day of the period are dropped"
)
"""Printed beside every card precision figure, so no number is read under the wrong rules."""

CARD_PRECISION_STRICT_DEFINITION = (
    "card precision@k, strict: as the handbook's, but every card with a fraud label on an "
    "earlier day of the period is dropped, whether or not it was in that day's top k"
)


def _card_frame(day: ArrayLike, card: ArrayLike, y_true: ArrayLike, score: ArrayLike, k: int):
    """Per (day, card): the card's maximum label and score; None when there are no rows."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y = as_labels(y_true)
    s = as_scores(score, y.size)
    days, cards = _series("day", day), _series("card", card)
    if days.len() != y.size or cards.len() != y.size:
        raise ValueError("day, card, y_true and score must have the same length")
    if y.size == 0:
        return None, None
    labels = pl.Series("label", y.astype(np.int8))
    frame = pl.DataFrame([days, cards, labels, pl.Series("score", s)])
    per_card = frame.group_by("day", "card").agg(pl.col("label").max(), pl.col("score").max())
    return frame.select(pl.col("day").unique()), per_card


def _top_k(per_card: pl.DataFrame, k: int) -> pl.DataFrame:
    """Each (day, card) with `taken`: the expected share of it inside its day's top k.

    Cards tied on the score at the k-th place share the free places (the expected value of a
    random tie-break), so no result depends on row order.
    """
    n, before = pl.col("n"), pl.col("before")
    groups = (
        per_card.group_by("day", "score")
        .agg(n=pl.len().cast(pl.Int64))  # signed: k - before
        .sort(["day", "score"], descending=[False, True])
        .with_columns(before=n.cum_sum().over("day") - n)  # cards ranked strictly above the tie
        .with_columns(taken=pl.min_horizontal(pl.max_horizontal(k - before, 0), n) / n)
    )
    return per_card.join(groups.select("day", "score", "taken"), on=["day", "score"])


def _mean_over_days(all_days: pl.DataFrame, hits: pl.DataFrame, k: int) -> float:
    per_day = all_days.join(hits, on="day", how="left")
    return float(per_day.select(pl.col("hits").fill_null(0.0).mean()).item()) / k


def card_precision_at_k(
    day: ArrayLike, card: ArrayLike, y_true: ArrayLike, score: ArrayLike, k: int = 100
) -> float:
    """Card precision@k as the fraud-detection handbook defines it (`CARD_PRECISION_DEFINITION`).

    Analysts review cards, not transactions: each card of a day gets its maximum score and
    maximum label, the k highest-scored cards are checked, and their frauds divided by k (also
    when fewer than k cards remain); the mean is taken over every distinct day of `day` (a day
    with no remaining card counts 0). A card checked and found fraudulent is blocked, so it is
    dropped from every later day. A fraudulent card the analysts did *not* check stays: it is
    still a card to find. Cards known compromised before the period are the caller's to remove
    (the backtest does). Cards tied at the k-th place share the free places; such a card counts
    as detected when any share of it was checked.
    """
    all_days, per_card = _card_frame(day, card, y_true, score, k)
    if per_card is None:
        return math.nan
    per_card = _top_k(per_card, k)
    detected: set = set()
    hits = []
    for (d,), rows in per_card.sort("day").group_by("day", maintain_order=True):
        if detected:
            rows = _top_k(rows.drop("taken").filter(~pl.col("card").is_in(list(detected))), k)
        checked = rows.filter(pl.col("taken") > 0)
        hits.append((d, float((checked["label"] * checked["taken"]).sum())))
        detected.update(checked.filter(pl.col("label") == 1)["card"].to_list())
    frame = pl.DataFrame(
        {"day": [h[0] for h in hits], "hits": [h[1] for h in hits]},
        schema={"day": all_days.schema["day"], "hits": pl.Float64},
    )
    return _mean_over_days(all_days, frame, k)


def card_precision_at_k_strict(
    day: ArrayLike, card: ArrayLike, y_true: ArrayLike, score: ArrayLike, k: int = 100
) -> float:
    """Card precision@k under stricter rules (`CARD_PRECISION_STRICT_DEFINITION`).

    As `card_precision_at_k`, except that on each day every card with a fraud label on an
    earlier day of this data is dropped (caught from the day after its first fraud on), whether
    or not it was checked. It asks "how well are *new* compromised cards found"; it is lower
    than the handbook figure and not comparable with published ones.
    """
    all_days, per_card = _card_frame(day, card, y_true, score, k)
    if per_card is None:
        return math.nan
    first_fraud = (
        per_card.filter(pl.col("label") == 1)
        .group_by("card")
        .agg(pl.col("day").min().alias("first_fraud_day"))
    )
    remaining = per_card.join(first_fraud, on="card", how="left").filter(
        pl.col("first_fraud_day").is_null() | (pl.col("day") <= pl.col("first_fraud_day"))
    )
    hits = (
        _top_k(remaining.drop("first_fraud_day"), k)
        .group_by("day")
        .agg(hits=(pl.col("label") * pl.col("taken")).sum())
    )
    return _mean_over_days(all_days, hits, k)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def threshold_metrics(y_true: ArrayLike, score: ArrayLike, threshold: float) -> dict[str, float]:
    """Confusion counts and rates of the fraud class when alerting on `score >= threshold`.

    Keys: precision, recall, f1, fpr, f_beta (β = F_BETA), tp, fp, tn, fn (counts as int).
    Any 0/0 is 0.0, so a threshold that flags nothing scores 0 rather than NaN.
    """
    y = as_labels(y_true)
    flagged = as_scores(score, y.size) >= threshold
    tp = int(np.count_nonzero(flagged & y))
    fp = int(np.count_nonzero(flagged & ~y))
    fn = int(np.count_nonzero(~flagged & y))
    tn = y.size - tp - fp - fn
    return _rates(tp, fp, tn, fn)


def _rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    b2 = F_BETA**2
    return {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "fpr": _ratio(fp, fp + tn),
        "f_beta": _ratio((1 + b2) * precision * recall, b2 * precision + recall),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def expected_money(
    y_true: ArrayLike,
    score: ArrayLike,
    amount: ArrayLike,
    threshold: float,
    cost_per_alert: float = COST_PER_ALERT,
) -> dict[str, float]:
    """Money view of an operating point, alerting on `score >= threshold`.

    saved = amounts of caught frauds, lost = amounts of missed frauds, alert_cost =
    cost_per_alert × alerts (every alert is reviewed, true or false), net = saved − alert_cost.
    """
    y = as_labels(y_true)
    flagged = as_scores(score, y.size) >= threshold
    amt = np.asarray(amount, dtype=np.float64)
    if amt.shape != y.shape:
        raise ValueError(f"amount must have shape {y.shape} like y_true, got {amt.shape}")
    saved = float(amt[flagged & y].sum())
    alerts = int(np.count_nonzero(flagged))
    alert_cost = cost_per_alert * alerts
    return {
        "saved": saved,
        "lost": float(amt[~flagged & y].sum()),
        "alerts": alerts,
        "alert_cost": alert_cost,
        "net": saved - alert_cost,
    }


SCENARIOS = (1, 2, 3)
"""The simulator's fraud scenarios: 1 amount above 220, 2 compromised terminal (every
transaction there for 28 days), 3 compromised card (a third of its amounts × 5 for 14 days)."""


def scenario_recall(scenario: ArrayLike, score: ArrayLike, threshold: float) -> dict[str, float]:
    """recall_scenario_{s}: the share of scenario-s frauds scored at or above `threshold`; NaN
    when there are none. `scenario` holds 0 for genuine rows, else the scenario number."""
    sc = np.asarray(scenario)
    s = as_scores(score, sc.size)
    out = {}
    for number in SCENARIOS:
        chosen = sc == number
        n = int(np.count_nonzero(chosen))
        out[f"recall_scenario_{number}"] = (
            float(np.count_nonzero(s[chosen] >= threshold)) / n if n else math.nan
        )
    return out


def summary(
    y_true: ArrayLike,
    score: ArrayLike,
    threshold: float,
    day: ArrayLike | None = None,
    card: ArrayLike | None = None,
    amount: ArrayLike | None = None,
    k: int = 100,
    cost_per_alert: float = COST_PER_ALERT,
) -> dict[str, float]:
    """Every metric of docs/models.md in one flat dict of floats, ready to log.

    Card precision needs both `day` and `card`, money needs `amount`; those are left out when
    their inputs are None. Keys: n_rows, fraud_rate, auc_roc, average_precision,
    card_precision_at_{k} (handbook definition), card_precision_at_{k}_strict, threshold,
    precision, recall, f1, fpr, f_beta, tp, fp, tn, fn, money_saved, money_lost, money_alerts,
    money_alert_cost, money_net.
    """
    y = as_labels(y_true)
    s = as_scores(score, y.size)
    out: dict[str, float] = {
        "n_rows": float(y.size),
        "fraud_rate": float(y.mean()) if y.size else math.nan,
        "auc_roc": auc_roc(y, s),
        "average_precision": average_precision(y, s),
    }
    if day is not None and card is not None:
        out[f"card_precision_at_{k}"] = card_precision_at_k(day, card, y, s, k=k)
        out[f"card_precision_at_{k}_strict"] = card_precision_at_k_strict(day, card, y, s, k=k)
    out["threshold"] = float(threshold)
    out |= {name: float(v) for name, v in threshold_metrics(y, s, threshold).items()}
    if amount is not None:
        money = expected_money(y, s, amount, threshold, cost_per_alert=cost_per_alert)
        out |= {f"money_{name}": float(v) for name, v in money.items()}
    return out
