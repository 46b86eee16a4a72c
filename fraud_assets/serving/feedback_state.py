"""Online feedback features: the labels recorded so far, per card and terminal, and the
FEEDBACK_FEATURES of an incoming transaction exactly as `features.feedback` defines them.

    FeedbackState()                      in-process (dev / in-process store), behind one lock
    RedisFeedbackState(client, prefix)   shared by every API worker and the stream worker
        .record(transaction_id, card, terminal, tx_time_seconds, fraud, known_at)
        .features_for(card, terminal, tx_time_seconds) -> dict[str, int]
        .features_for_many([(card, terminal, tx_time_seconds), ...]) -> list[dict[str, int]]
        .clock_of_labels() -> int | None    the newest known_at held
    replay_label_log(state, directory) -> int   the label log's records, in order (a restarted
                                                in-process service gets its labels back)

Labels are kept for FEEDBACK_RETENTION_SECONDS of transaction time (plus the time guard's 31
days) behind the newest label; older ones can no longer fall in any window of a transaction the
time guard accepts. With Redis the service's processes share one state: a decision taken through
one API worker changes the features the stream worker computes next (docs/features.md).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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
                _count(who, self._by[who].get(int(key), ()), t, out)
        return {name: out[name] for name in FEEDBACK_FEATURES}

    def features_for_many(self, keys: Sequence[tuple[int, int, int]]) -> list[dict[str, int]]:
        return [self.features_for(card, terminal, t) for card, terminal, t in keys]

    def clock_of_labels(self) -> int | None:
        return self._newest_known


def _count(who: str, labels: Iterable[_Label], t: int, out: dict[str, int]) -> None:
    """The definition (features/feedback.py) over one card's or terminal's labels."""
    in_force: dict[int, _Label] = {}
    for label in labels:
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


class RedisFeedbackState:
    """The same state in Redis, so every process of the service reads the same labels.

    Keys, under `prefix`: `fb:card:{id}` and `fb:term:{id}` (sorted sets: score = the labelled
    transaction's time, member "<transaction id>:<0|1>:<known_at>:<seq>"), `fb:seq` (INCR: the
    order labels were recorded, across processes) and `fb:clock` (the newest known_at). A
    transaction at t reads only members with time in (t - longest window, t]: a verdict and its
    corrections share the transaction's time, so they are read together.
    """

    def __init__(self, client: Any, prefix: str = "fraud:") -> None:
        self.redis = client
        self.prefix = prefix

    def _key(self, who: str, key: int) -> str:
        return f"{self.prefix}fb:{'card' if who == 'card' else 'term'}:{int(key)}"

    def record(
        self,
        transaction_id: int,
        card: int,
        terminal: int,
        tx_time_seconds: int,
        fraud: bool,
        known_at: int,
    ) -> None:
        seq = int(self.redis.incr(f"{self.prefix}fb:seq"))
        member = f"{int(transaction_id)}:{int(bool(fraud))}:{int(known_at)}:{seq}"
        cutoff = int(known_at) - FEEDBACK_RETENTION_SECONDS - _GRACE
        pipe = self.redis.pipeline(transaction=True)
        for who, key in (("card", card), ("terminal", terminal)):
            name = self._key(who, key)
            pipe.zadd(name, {member: int(tx_time_seconds)})
            pipe.zremrangebyscore(name, "-inf", cutoff)
        pipe.zadd(f"{self.prefix}fb:clock", {"clock": int(known_at)}, gt=True)
        pipe.execute()

    def features_for(self, card: int, terminal: int, tx_time_seconds: int) -> dict[str, int]:
        return self.features_for_many([(card, terminal, tx_time_seconds)])[0]

    def features_for_many(self, keys: Sequence[tuple[int, int, int]]) -> list[dict[str, int]]:
        """One round trip for the whole batch."""
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for card, terminal, t in keys:
            low = f"({int(t) - FEEDBACK_RETENTION_SECONDS}"
            pipe.zrangebyscore(self._key("card", card), low, int(t), withscores=True)
            pipe.zrangebyscore(self._key("terminal", terminal), low, int(t), withscores=True)
        replies = pipe.execute()
        out = []
        for i, (_, _, t) in enumerate(keys):
            values: dict[str, int] = {}
            for who, reply in (("card", replies[2 * i]), ("terminal", replies[2 * i + 1])):
                _count(who, (_parse(member, score) for member, score in reply), int(t), values)
            out.append({name: values[name] for name in FEEDBACK_FEATURES})
        return out

    def clock_of_labels(self) -> int | None:
        value = self.redis.zscore(f"{self.prefix}fb:clock", "clock")
        return None if value is None else int(value)


def _parse(member: bytes | str, score: float) -> _Label:
    text = member.decode() if isinstance(member, bytes) else member
    transaction_id, fraud, known_at, seq = text.split(":")
    return _Label(int(transaction_id), int(score), fraud == "1", int(known_at), int(seq))


def replay_label_log(state: FeedbackState | RedisFeedbackState, directory: Any) -> int:
    """Record the label log's label events (those with a known_at) into `state`, in the log's
    order; returns how many. For the in-process state at start: Redis keeps its own."""
    from fraud_assets.features.feedback import label_events
    from fraud_assets.serving.labels import read_label_log

    events = label_events(read_label_log(directory))
    for e in events.iter_rows(named=True):
        state.record(e["transaction_id"], e["customer_id"], e["terminal_id"],
                     e["tx_time_seconds"], e["fraud"], e["known_at_seconds"])  # fmt: skip
    return events.height
