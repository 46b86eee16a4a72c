"""The desk's state: recent transactions per card, the alerts of each day, the decisions.

An alert is a scored transaction whose decision is "review" or "block". The queue of a day lists
the cards with alerts that day which nobody has decided as fraud or genuine yet ("needs_info"
keeps a card in the queue, marked), ranked by the card's highest score that day (a rule block
without a model score counts as 1.0), cut to the daily budget k.

A decision of fraud or genuine labels the card's transactions of the alert window -- every
transaction of that card on that day the desk holds -- through `Scorer.feedback` (the label log
that /v1/feedback writes, then the online store and the feedback features), and appends one
record to the audit log (JSON lines beside the label log, prefix "audit"): who, what, when, the
note, the transactions labelled. On start the decisions are read back from the audit log, so a
decided card stays out of the queue across restarts.

In-process state (one scoring process); the alerts themselves are rebuilt as traffic is scored.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.rules import BLOCK, REVIEW

DEFAULT_BUDGET = 100
RECENT_PER_CARD = 50  # transactions kept per card for its page
ALERT_DECISIONS = (REVIEW, BLOCK)


class Verdict(StrEnum):
    fraud = "fraud"
    genuine = "genuine"
    needs_info = "needs_info"


@dataclass(frozen=True, slots=True)
class Seen:
    """One scored transaction as the desk shows it (pseudonymised ids, as in the lake)."""

    transaction_id: int
    card: int
    terminal: int
    tx_time_seconds: int
    tx_datetime: dt.datetime
    amount: float
    probability: float | None
    decision: str
    decided_by: str
    features: dict[str, float]
    scored_at: float  # wall clock (time.time()) when it was scored

    @property
    def score(self) -> float:
        return 1.0 if self.probability is None else float(self.probability)

    @property
    def day(self) -> dt.date:
        return self.tx_datetime.date()


@dataclass
class CardAlerts:
    card: int
    score: float = 0.0
    alerts: list[int] = field(default_factory=list)  # transaction ids
    first_alert_at: float = 0.0  # wall clock


@dataclass(frozen=True)
class QueueEntry:
    card: int
    score: float
    alerts: int
    status: str  # "new" or "needs_info"


class Desk:
    """Observer of the scorer and keeper of the queue; thread-safe."""

    def __init__(
        self,
        audit: LabelLog | None = None,
        budget: int = DEFAULT_BUDGET,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if budget < 1:
            raise ValueError("budget must be >= 1")
        self.budget = budget
        self.audit = audit
        self._lock = threading.Lock()
        self._recent: dict[int, deque[Seen]] = {}
        self._alerts: dict[dt.date, dict[int, CardAlerts]] = {}
        self._decided: dict[tuple[dt.date, int], str] = {}
        r = registry or CollectorRegistry()
        self.decisions_total = Counter(
            "fraud_desk_decisions", "Investigator decisions.", ["decision"], registry=r
        )
        self.time_to_decision = Histogram(
            "fraud_desk_time_to_decision_seconds",
            "From a card's first alert of the day to the investigator's decision.",
            buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400),
            registry=r,
        )
        depth = Gauge(
            "fraud_desk_queue_depth",
            "Cards awaiting a decision on the newest alert day (before the budget cut).",
            registry=r,
        )
        depth.set_function(self.depth)
        if audit is not None:
            self._load_decisions(audit)

    # -- observing ---------------------------------------------------------------------------

    def observe(self, prepared: Sequence[Any], vectors: Sequence[Any], results: Sequence[Any]):
        """`Scorer` observer: remember each scored transaction; alerts join the day's queue."""
        now = time.time()
        with self._lock:
            for p, vector, result in zip(prepared, vectors, results, strict=True):
                if not isinstance(result, dict):
                    continue  # refused by the time guard: not scored
                tx = p.tx
                seen = Seen(
                    transaction_id=tx.transaction_id,
                    card=tx.customer_id,
                    terminal=tx.terminal_id,
                    tx_time_seconds=tx.tx_time_seconds,
                    tx_datetime=tx.tx_datetime,
                    amount=tx.tx_amount,
                    probability=result.get("fraud_probability"),
                    decision=result["decision"],
                    decided_by=result["decided_by"],
                    features=dict(vector),
                    scored_at=now,
                )
                recent = self._recent.setdefault(seen.card, deque(maxlen=RECENT_PER_CARD))
                if any(s.transaction_id == seen.transaction_id for s in recent):
                    continue  # a retry: the first scoring stands
                recent.append(seen)
                if seen.decision in ALERT_DECISIONS:
                    day = self._alerts.setdefault(seen.day, {})
                    entry = day.get(seen.card)
                    if entry is None:
                        entry = day[seen.card] = CardAlerts(seen.card, first_alert_at=now)
                    entry.score = max(entry.score, seen.score)
                    entry.alerts.append(seen.transaction_id)

    # -- reading -----------------------------------------------------------------------------

    def days(self) -> list[dt.date]:
        with self._lock:
            return sorted(self._alerts, reverse=True)

    def newest_day(self) -> dt.date | None:
        days = self.days()
        return days[0] if days else None

    def _pending(self, day: dt.date) -> list[QueueEntry]:
        out = []
        for card, alerts in self._alerts.get(day, {}).items():
            status = self._decided.get((day, card))
            if status in (Verdict.fraud, Verdict.genuine):
                continue
            out.append(
                QueueEntry(card, alerts.score, len(alerts.alerts), status or "new")  # type: ignore[arg-type]
            )
        out.sort(key=lambda e: (-e.score, e.card))
        return out

    def queue(self, day: dt.date, k: int | None = None) -> list[QueueEntry]:
        """The un-investigated cards of `day`, highest score first, at most k (the budget)."""
        with self._lock:
            return self._pending(day)[: k or self.budget]

    def depth(self) -> float:
        with self._lock:
            if not self._alerts:
                return 0.0
            return float(len(self._pending(max(self._alerts))))

    def card(self, card: int, day: dt.date) -> tuple[list[Seen], CardAlerts | None, str | None]:
        """The card's recent transactions (newest first), its alerts of `day`, its decision."""
        with self._lock:
            recent = sorted(
                self._recent.get(card, ()),
                key=lambda s: (s.tx_time_seconds, s.transaction_id),
                reverse=True,
            )
            return recent, self._alerts.get(day, {}).get(card), self._decided.get((day, card))

    def window(self, card: int, day: dt.date) -> list[Seen]:
        """The alert window: the card's transactions on `day` that the desk holds."""
        with self._lock:
            return [s for s in self._recent.get(card, ()) if s.day == day]

    # -- deciding ----------------------------------------------------------------------------

    def decide(
        self,
        card: int,
        day: dt.date,
        verdict: Verdict,
        note: str,
        investigator: str,
        label: Any,  # callable(transaction_id, fraud, source) -> None (Scorer.feedback)
    ) -> dict[str, Any]:
        """Record a decision: labels for fraud/genuine first, then the audit record."""
        with self._lock:
            alerts = self._alerts.get(day, {}).get(card)
        if alerts is None:
            raise LookupError(f"card {card} has no alert on {day.isoformat()}")
        labelled: list[int] = []
        if verdict in (Verdict.fraud, Verdict.genuine):
            for seen in self.window(card, day):
                label(seen.transaction_id, verdict is Verdict.fraud, f"desk:{investigator}")
                labelled.append(seen.transaction_id)
        now = time.time()
        record = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "investigator": investigator,
            "card": card,
            "day": day.isoformat(),
            "decision": verdict.value,
            "note": note,
            "score": alerts.score,
            "labelled": labelled,
            "seconds_to_decision": round(now - alerts.first_alert_at, 3),
        }
        if self.audit is not None:
            self.audit.append(record)
        with self._lock:
            self._decided[(day, card)] = verdict.value
        self.decisions_total.labels(verdict.value).inc()
        self.time_to_decision.observe(max(0.0, now - alerts.first_alert_at))
        return record

    def audit_records(self, limit: int = 200) -> list[dict[str, Any]]:
        if self.audit is None:
            return []
        return list(reversed(self.audit.read()))[:limit]

    def _load_decisions(self, audit: LabelLog) -> None:
        for r in audit.read():
            try:
                self._decided[(dt.date.fromisoformat(r["day"]), int(r["card"]))] = r["decision"]
            except (KeyError, ValueError, TypeError):
                continue  # a foreign or damaged line is not a decision
