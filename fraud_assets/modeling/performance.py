"""What the served champion actually achieved on a batch, once its labels are known, and when a
sustained fall of that figure calls for retraining (no Dagster, no MLflow).

A batch's labels are known when its newest day is at least `delay_days` older than the newest
data (investigators' labels, `fraud_labels`, may arrive sooner; they replace the batch's own).
Its metrics are those of the model's own operating point: AUC ROC, average precision, card
precision@100 (handbook definition, over the batch's days), recall, FPR and precision at the
served threshold, and the alert rate. The reference is the champion's own validation figure, so
"decay" means "worse than this model was when it was chosen", not worse than another model.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the retraining sensor imports the decay rule; it need not load the models
    import numpy as np
    import polars as pl

PERFORMANCE_KEYS = (
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "recall",
    "fpr",
    "precision",
    "alert_rate",
)


def labels_known(batch_last_day: dt.date, data_end: dt.date, delay_days: int) -> bool:
    """True when every day of the batch is at least `delay_days` older than the newest data."""
    return (data_end - batch_last_day).days >= delay_days


def batch_performance(rows: pl.DataFrame, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """The champion's metrics on one labelled batch; NaN where undefined (no fraud in it)."""
    from fraud_assets.modeling.metrics import summary
    from fraud_assets.modeling.training import LABEL, TX_DATE

    y = rows[LABEL].to_numpy()
    metrics = summary(
        y,
        scores,
        threshold,
        day=rows.select(TX_DATE).to_series(),
        card=rows["customer_id"],
        amount=rows["tx_amount"].to_numpy(),
    )
    alerts = metrics["tp"] + metrics["fp"]
    out = {k: metrics[k] for k in PERFORMANCE_KEYS if k in metrics}
    out["alert_rate"] = alerts / y.size if y.size else math.nan
    out |= {"rows": float(y.size), "frauds": float(y.sum()), "threshold": float(threshold)}
    return out


@dataclass(frozen=True)
class DecayRule:
    """Retrain when the metric stays more than `max_drop` below the champion's validation value
    for `sustained` batches in a row (one bad batch is noise; several are a trend)."""

    metric: str = "average_precision"
    max_drop: float = 0.10
    sustained: int = 2
    floor: float | None = None
    """Also decay when the metric is below this absolute value (None: no floor)."""

    def __post_init__(self) -> None:
        if self.sustained < 1 or self.max_drop < 0:
            raise ValueError("sustained must be >= 1 and max_drop >= 0")


def decay_reason(
    history: list[tuple[str, float, float]], rule: DecayRule = DecayRule()
) -> str | None:
    """`history`: (batch, value, champion's validation value) in batch order, newest last, all
    for the current champion. A reason to retrain, or None."""
    recent = history[-rule.sustained :]
    if len(recent) < rule.sustained:
        return None
    below = [(batch, value, ref) for batch, value, ref in recent if _decayed(value, ref, rule)]
    if len(below) < rule.sustained:
        return None
    shown = ", ".join(f"{b} {v:.3f}" for b, v, _ in below)
    floor = f" or below the floor {rule.floor}" if rule.floor is not None else ""
    return (
        f"performance decay: champion {rule.metric} more than {rule.max_drop} below its "
        f"validation value {below[-1][2]:.3f}{floor} in {rule.sustained} labelled batches in a "
        f"row ({shown})"
    )


def _decayed(value: float, reference: float, rule: DecayRule) -> bool:
    if math.isnan(value):  # no fraud in the batch: nothing to judge, so no evidence of decay
        return False
    if rule.floor is not None and value < rule.floor:
        return True
    return not math.isnan(reference) and value < reference - rule.max_drop
