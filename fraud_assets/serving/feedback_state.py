"""Online feedback features: the labels recorded so far, per card and terminal, and the
FEEDBACK_FEATURES of an incoming transaction exactly as `features.feedback` defines them.

    FeedbackState()
        .record(transaction_id, card, terminal, tx_time_seconds, fraud, known_at)
        .features_for(card, terminal, tx_time_seconds) -> dict[str, int]
        .clock_of_labels() -> int | None    the newest known_at held

Labels are kept for FEEDBACK_RETENTION_SECONDS of transaction time (plus a day of grace) behind
the newest label; older ones can no longer fall in any window of a transaction the time guard
accepts. In-process, behind one lock; one per scoring process.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from fraud_assets.features.feedback import (
    FEEDBACK_FEATURES,
    FEEDBACK_RETENTION_SECONDS,
    FEEDBACK_WINDOWS_DAYS,
)
from fraud_assets.features.spec import SECONDS_PER_DAY

_GRACE = 31 * SECONDS_PER_DAY  # a late transaction the time guard accepts (30 d + 1 d grace)


@dataclass(frozen=True, slots=True)
class _Label:
    transaction_id: int
    tx_time: int
    fraud: bool
    known_at: int
    seq: int


class FeedbackState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[str, dict[int, list[_Label]]] = {
            "card": defaultdict(list),
            "terminal": defaultdict(list),
        }
        self._seq = 0
        self._newest_known: int | None = None

    def record(
        self,
        transaction_id: int,
        card: int,
        terminal: int,
        tx_time_seconds: int,
        fraud: bool,
        known_at: int,
    ) -> None:
        with self._lock:
            self._seq += 1
            label = _Label(
                int(transaction_id), int(tx_time_seconds), bool(fraud), known_at, self._seq
            )
            for who, key in (("card", card), ("terminal", terminal)):
                labels = self._by[who][int(key)]
                labels.append(label)
                cutoff = known_at - FEEDBACK_RETENTION_SECONDS - _GRACE
                if labels[0].tx_time <= cutoff:
                    labels[:] = [x for x in labels if x.tx_time > cutoff]
            if self._newest_known is None or known_at > self._newest_known:
                self._newest_known = known_at

    def features_for(self, card: int, terminal: int, tx_time_seconds: int) -> dict[str, int]:
        t = int(tx_time_seconds)
        out: dict[str, int] = {}
        with self._lock:
            for who, key in (("card", card), ("terminal", terminal)):
                in_force: dict[int, _Label] = {}
                for label in self._by[who].get(int(key), ()):
                    if label.known_at >= t:
                        continue
                    held = in_force.get(label.transaction_id)
                    if held is None or (label.known_at, label.seq) > (held.known_at, held.seq):
                        in_force[label.transaction_id] = label
                for w in FEEDBACK_WINDOWS_DAYS:
                    low = t - w * SECONDS_PER_DAY
                    out[f"{who}_confirmed_fraud_{w}d"] = sum(
                        1 for x in in_force.values() if x.fraud and low < x.tx_time <= t
                    )
        return {name: out[name] for name in FEEDBACK_FEATURES}

    def clock_of_labels(self) -> int | None:
        return self._newest_known
