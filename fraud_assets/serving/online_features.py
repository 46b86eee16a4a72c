"""Online features: for each incoming transaction, exactly the batch features of `spec`.

The batch engine (`features.polars_engine`) sees a whole table; the scoring service sees one
transaction at a time. An `OnlineFeatureStore` keeps, per customer and per terminal, just enough
recent history to compute the same numbers, and updates it with every scored transaction.

Public API
    Transaction                  the (already pseudonymised) raw transaction the service receives
    OnlineFeatureStore           the interface; `features_for`, `record_label`, `publish_snapshot`,
                                 `seen`, `clock`, `newest_batch`
    TimeRefused                  (ValueError) a transaction outside the time guard
    InMemoryFeatureStore()       the embedded default (one process, a lock)
    RedisFeatureStore(client, prefix="fraud:")   shared state, one Lua script per transaction

Semantics (the same as `spec`, stated for one transaction at a time)
    Ordering. Within a customer, transactions are ordered by (tx_time_seconds, transaction_id),
    not by arrival. `features_for(tx)` counts the customer's stored transactions that come at or
    before `tx` in that order and lie in (t - w, t]; stored transactions that come *after* `tx`
    (they arrived earlier but are later in time, or in the same second with a larger id) are
    ignored. So a late transaction gets exactly its batch features. What cannot be matched:
    features already returned for a transaction are never revised, so a transaction scored
    before an earlier-ordered one arrived did not count it (batch would have). In-order
    arrival, the normal case, gives exact parity for every transaction.
    Retention. A customer keeps its transactions of the last 30 days, a terminal those of the
    last 37 days (delay + longest window), each plus `late_grace_seconds` (default one day)
    measured from the transaction being scored, so a transaction arriving up to that much later
    than newer ones still finds its full window. Older entries are pruned on every write.
    Labels. The terminal window of a transaction at t is (t - d - w, t - d] with d = 7 days.
    Every scored transaction is recorded under its terminal as (time, id); `record_label` marks
    one as fraud or genuine (and adds it when the service never scored it). Online "known"
    means: every transaction older than t - d is assumed labelled — the bank's feedback arrives
    within the delay — so an unlabelled one counts as genuine. Labels are keyed by transaction
    time, never by arrival, and only those at or before t - d are ever read, so feeding a label
    early cannot leak it into a younger transaction's features.
    Idempotence. A transaction id is counted once in every window, whatever a retry carries:
    the first version recorded under an id wins (the batch pipeline also keeps the first row per
    id). A retry -- same content, changed amount, another card, another second -- is scored as
    that first version, reading the history as it is then, which is the batch answer again. The
    store keeps each id's first version for the terminal retention (the id index).
    Time guard. The store's clock is the newest transaction time it holds. A new transaction
    more than `max_skew_seconds` (default one day) after the clock, or at or before the clock
    minus the customer retention, is refused with `TimeRefused` and changes nothing. Pruning
    is measured from min(t, clock + grace), so no transaction, however far ahead, erases
    history the others still need. An empty store has no clock and accepts the first transaction.
    Own ratios. Each transaction keeps its own customer_amount_ratio_30d, decided once, when it
    was first scored (or published: computed over the snapshot's rows, before they are cut to
    the retention): beside its first version for `terminal_fraud_run_min_ratio`, and as a flag
    (above OUTLIER_RATIO) on its card entry for `customer_prior_outliers_7d`.
    Labels. `record_label(transaction_id, fraud)` applies to a transaction the store has seen
    (scored, or published from a batch) and returns its version; an unknown id returns None
    and changes nothing. Labels can be corrected (fraud -> genuine and back).
    Snapshot. `publish_snapshot(clean)` bulk-loads the newest 30 (customers) and 37 (terminals)
    days, plus the grace, of a batch clean table, labels (`tx_fraud`) included. Ids already held
    keep their first version (only their label is updated), so loading it twice, or over live
    state, counts every transaction once. `batch_id` is remembered: `newest_batch()`.

Both stores compute the windows from the same bounds and assemble the features with the same
code (`_assemble`), so they return identical values.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import threading
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fraud_assets.features.spec import (
    CARD_HISTORY_FEATURES,
    FEATURE_COLUMNS,
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    OUTLIER_RATIO,
    OWN_RATIO_WINDOW_DAYS,
    PRIOR_OUTLIER_WINDOW_DAYS,
    RATIO_WINDOWS_DAYS,
    RUN_WINDOW_DAYS,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)
from fraud_assets.features.windows import customer_windows

CUSTOMER_RETENTION_SECONDS = max(WINDOWS_DAYS) * SECONDS_PER_DAY
TERMINAL_RETENTION_SECONDS = (LABEL_DELAY_DAYS + max(WINDOWS_DAYS)) * SECONDS_PER_DAY
DEFAULT_LATE_GRACE_SECONDS = SECONDS_PER_DAY
_DELAY_SECONDS = LABEL_DELAY_DAYS * SECONDS_PER_DAY
_RUN_SECONDS = RUN_WINDOW_DAYS * SECONDS_PER_DAY
_OWN_RATIO_WINDOW = WINDOWS_DAYS.index(OWN_RATIO_WINDOW_DAYS)  # whose mean a ratio divides by
(_PRIOR_OUTLIERS,) = CARD_HISTORY_FEATURES
_ID_WIDTH = 20  # zero-padded ids sort as strings the way they sort as numbers (int64 < 10**19)
DEFAULT_MAX_SKEW_SECONDS = SECONDS_PER_DAY
SNAPSHOT_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_time_seconds",
    "tx_fraud",
)

Features = dict[str, float | int]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One incoming transaction; customer and terminal ids are already pseudonymised."""

    transaction_id: int
    tx_datetime: dt.datetime  # naive, UTC wall clock
    customer_id: int
    terminal_id: int
    tx_amount: float
    tx_time_seconds: int  # seconds since the data's origin: the time every window uses

    def __post_init__(self) -> None:
        if self.transaction_id < 0:
            raise ValueError(f"transaction_id must be >= 0, got {self.transaction_id}")
        if not (self.tx_amount > 0 and math.isfinite(self.tx_amount)):
            # The batch quarantines such rows; scoring one would poison the card's averages.
            raise ValueError(f"tx_amount must be a positive number, got {self.tx_amount!r}")
        if self.tx_datetime.tzinfo is not None:
            utc = self.tx_datetime.astimezone(dt.UTC).replace(tzinfo=None)
            object.__setattr__(self, "tx_datetime", utc)

    def version(self) -> str:
        """The stored form of this version: `time|customer|terminal|amount|datetime`."""
        return (
            f"{self.tx_time_seconds}|{self.customer_id}|{self.terminal_id}|"
            f"{float(self.tx_amount)!r}|{self.tx_datetime.isoformat()}"
        )

    @classmethod
    def from_version(cls, transaction_id: int, version: str | bytes) -> Transaction:
        if isinstance(version, bytes):
            version = version.decode()
        t, customer, terminal, amount, when = version.split("|")
        return cls(
            transaction_id=int(transaction_id),
            tx_datetime=dt.datetime.fromisoformat(when),
            customer_id=int(customer),
            terminal_id=int(terminal),
            tx_amount=float(amount),
            tx_time_seconds=int(t),
        )

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Transaction:
        """From a dict such as a clean-table row (extra keys are ignored)."""
        return cls(
            transaction_id=int(row["transaction_id"]),
            tx_datetime=row["tx_datetime"],
            customer_id=int(row["customer_id"]),
            terminal_id=int(row["terminal_id"]),
            tx_amount=float(row["tx_amount"]),
            tx_time_seconds=int(row["tx_time_seconds"]),
        )


@dataclass(frozen=True, slots=True)
class _Bounds:
    """Window edges for a transaction at t, all in seconds since the origin."""

    customer_after: tuple[int, ...]  # customer window w: time > customer_after[w], up to t
    prior_after: int  # the card's earlier outliers: time > prior_after, before the transaction
    terminal_upto: int  # terminal windows: time <= t - d ...
    terminal_after: tuple[int, ...]  # ... and time > t - d - w

    @classmethod
    def at(cls, t: int) -> _Bounds:
        upto = t - _DELAY_SECONDS
        return cls(
            customer_after=tuple(t - w * SECONDS_PER_DAY for w in WINDOWS_DAYS),
            prior_after=t - PRIOR_OUTLIER_WINDOW_DAYS * SECONDS_PER_DAY,
            terminal_upto=upto,
            terminal_after=tuple(upto - w * SECONDS_PER_DAY for w in WINDOWS_DAYS),
        )


@dataclass(frozen=True, slots=True)
class _Windows:
    """Raw window aggregates, one entry per WINDOWS_DAYS."""

    customer_counts: tuple[int, ...]
    customer_sums: tuple[float, ...]
    terminal_counts: tuple[int, ...]
    terminal_frauds: tuple[int, ...]
    terminal_run_seconds: int = 0  # t - start of the terminal's newest known fraud run, or 0
    terminal_run_min_amount: float = 0.0  # smallest amount of that run's frauds, or 0.0
    customer_prior_outliers: int = 0  # the card's earlier transactions flagged as outliers
    terminal_run_min_ratio: float = 0.0  # smallest own 30-day ratio of that run's frauds, or 0.0


def _own_ratio(amount: float, total: float, count: int) -> float:
    """The transaction's own customer_amount_ratio_30d from its window's sum and count: the
    same two divisions as `_assemble` (and the batch engines), so it agrees with the feature."""
    return amount / (total / count)


def _assemble(tx: Transaction, windows: _Windows) -> Features:
    out: Features = {
        "tx_during_weekend": int(tx.tx_datetime.weekday() >= 5),  # Saturday, Sunday
        "tx_during_night": int(tx.tx_datetime.hour <= NIGHT_LAST_HOUR),
    }
    for i, w in enumerate(WINDOWS_DAYS):
        count = windows.customer_counts[i]  # >= 1: the current transaction is included
        out[f"customer_nb_tx_{w}d"] = count
        out[f"customer_avg_amount_{w}d"] = windows.customer_sums[i] / count
    for i, w in enumerate(WINDOWS_DAYS):
        count, frauds = windows.terminal_counts[i], windows.terminal_frauds[i]
        out[f"terminal_nb_tx_{w}d"] = count
        out[f"terminal_risk_{w}d"] = frauds / count if count else 0.0
    # Model features derived from the ones above (issue 20): same operations, same order as
    # features.polars_engine, so the doubles are identical.
    out["tx_amount"] = tx.tx_amount
    for w in RATIO_WINDOWS_DAYS:
        out[f"customer_amount_ratio_{w}d"] = tx.tx_amount / out[f"customer_avg_amount_{w}d"]
    out["terminal_fraud_run_days"] = windows.terminal_run_seconds / SECONDS_PER_DAY
    out["terminal_fraud_run_min_amount"] = windows.terminal_run_min_amount
    out["terminal_fraud_run_min_ratio"] = windows.terminal_run_min_ratio
    out[_PRIOR_OUTLIERS] = windows.customer_prior_outliers
    # In spec order; a KeyError here means spec gained a feature serving does not compute yet.
    return {name: out[name] for name in FEATURE_COLUMNS}


class TimeRefused(ValueError):
    """A transaction outside the time guard; nothing was recorded. `reason`: future / stale."""

    def __init__(self, tx: Transaction, reason: str, clock: int, store: OnlineFeatureStore):
        self.transaction_id = tx.transaction_id
        self.reason = reason
        self.clock = clock
        if reason == "future":
            limit = store.max_skew_seconds
            text = (
                f"is {tx.tx_time_seconds - clock} s after the newest transaction the service "
                f"holds (tx_time_seconds {clock}); more than {limit} s ahead "
                "(FRAUD_MAX_CLOCK_SKEW_SECONDS) is refused"
            )
        else:
            limit = store.customer_retention
            text = (
                f"is {clock - tx.tx_time_seconds} s before the newest transaction the service "
                f"holds (tx_time_seconds {clock}); the online history reaches back {limit} s, "
                "so older transactions are refused"
            )
        super().__init__(text)


class OnlineFeatureStore(ABC):
    """State for online features. Implementations differ only in where the history lives."""

    def __init__(
        self,
        late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS,
        max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS,
    ) -> None:
        if late_grace_seconds < 0 or max_skew_seconds < 0:
            raise ValueError("late_grace_seconds and max_skew_seconds must be >= 0")
        self.late_grace_seconds = late_grace_seconds
        self.max_skew_seconds = max_skew_seconds
        self.customer_retention = CUSTOMER_RETENTION_SECONDS + late_grace_seconds
        self.terminal_retention = TERMINAL_RETENTION_SECONDS + late_grace_seconds

    def features_for(self, tx: Transaction | Mapping[str, Any]) -> Features:
        """FEATURE_COLUMNS for `tx` (itself included in its customer windows); records `tx`.

        One atomic step per transaction: concurrent requests for the same card never lose an
        update, and each sees a consistent history. A retry of a known id is scored as the
        first version; `TimeRefused` when the time guard refuses it.
        """
        out = self.features_for_many([tx])[0]
        if isinstance(out, TimeRefused):
            raise out
        return out

    def features_for_many(
        self, txs: Sequence[Transaction | Mapping[str, Any]]
    ) -> list[Features | TimeRefused]:
        """Each transaction in turn, in the order given; a refused one gives its `TimeRefused`
        in its place (the others are recorded)."""
        out: list[Features | TimeRefused] = []
        for tx in txs:
            if not isinstance(tx, Transaction):
                tx = Transaction.from_mapping(tx)
            try:
                scored, windows = self._score_and_record(tx)
            except TimeRefused as e:
                out.append(e)
                continue
            out.append(_assemble(scored, windows))
        return out

    def guard(self, tx: Transaction, clock: int | None) -> None:
        """Raise TimeRefused when `tx` lies outside the time guard of a store at `clock`."""
        if clock is None:
            return
        if tx.tx_time_seconds > clock + self.max_skew_seconds:
            raise TimeRefused(tx, "future", clock, self)
        if tx.tx_time_seconds <= clock - self.customer_retention:
            raise TimeRefused(tx, "stale", clock, self)

    @abstractmethod
    def _score_and_record(self, tx: Transaction) -> tuple[Transaction, _Windows]:
        """Atomically: the id's first version (tx when new, after the time guard), added to its
        customer's and terminal's history, with its windows."""

    @abstractmethod
    def record_label(self, transaction_id: int, fraud: bool) -> Transaction | None:
        """Label a transaction the store has seen; its version, or None (nothing recorded)."""

    @abstractmethod
    def seen(self, transaction_id: int) -> Transaction | None:
        """The first version of a transaction id the store holds, if any."""

    @abstractmethod
    def clock(self) -> int | None:
        """The newest transaction time held (seconds since the origin); None when empty."""

    @abstractmethod
    def newest_batch(self) -> str | None:
        """The newest batch id published into this store."""

    @abstractmethod
    def publish_snapshot(self, clean_history: pl.DataFrame, batch_id: str | None = None) -> int:
        """Merge the newest retained days of a batch clean table (labels included) into state;
        returns the number of transactions new to the store."""

    @abstractmethod
    def clear(self) -> None:
        """Forget all state of this store."""

    def _snapshot_rows(self, clean: pl.DataFrame, clock: int | None) -> pl.DataFrame | None:
        """The rows a snapshot publishes, first row per id, in (time, id) order."""
        if clean.height == 0:
            return None
        missing = [c for c in (*SNAPSHOT_COLUMNS, "tx_datetime") if c not in clean.columns]
        if missing:
            raise ValueError(f"snapshot needs clean-table columns {missing}")
        newest = int(clean["tx_time_seconds"].max())
        if clock is not None:
            newest = max(newest, clock)
        columns = [*SNAPSHOT_COLUMNS, "tx_datetime"]
        rows = (
            clean.select(columns)
            .unique("transaction_id", keep="first", maintain_order=True)
            .sort("tx_time_seconds", "transaction_id")
        )
        # Each row's own 30-day ratio (and outlier flag) from the rows given, before the cut:
        # the batch value for every row with its card's 30 days among them.
        means = customer_windows(rows)[f"customer_avg_amount_{OWN_RATIO_WINDOW_DAYS}d"]
        ratio = rows["tx_amount"].to_numpy().astype(np.float64, copy=False) / means
        rows = rows.with_columns(
            pl.col("tx_fraud").cast(pl.Boolean),
            ratio_30d=pl.Series(ratio),
            outlier=pl.Series(ratio > OUTLIER_RATIO),
        ).filter(pl.col("tx_time_seconds") > newest - self.terminal_retention)
        return rows if rows.height else None


# --------------------------------------------------------------------------------------------
# In process


def _insert(rows: list, entry: tuple) -> None:
    i = bisect_left(rows, entry)
    if i == len(rows) or rows[i] != entry:
        rows.insert(i, entry)


def _after(rows: list, seconds: int) -> int:
    """Index of the first entry with time > seconds (entries are tuples led by time)."""
    return bisect_right(rows, (seconds, math.inf))


def _fraud_run(
    txs: list,
    frauds: list,
    end: int,
    bounds: _Bounds,
    t: int,
    amount_of: Mapping[int, Any],
    ratio_of: Mapping[int, float],
) -> tuple[int, float, float]:
    """terminal_fraud_run_days in seconds, terminal_fraud_run_min_amount and _min_ratio: walk
    back from the newest known entry (txs[end - 1]) over frauds, inside the run window;
    (0, 0.0, 0.0) when the newest known one is genuine or absent. `amount_of`: id -> its first
    version (the id index, which holds every id of the terminal retention); `ratio_of`: id ->
    its own 30-day ratio, kept as long. A transaction arriving later than the grace can reach
    older entries that are gone from both: those are skipped."""
    low = _after(txs, bounds.terminal_upto - _RUN_SECONDS)
    start = None
    smallest = lowest = math.inf
    i = end - 1
    while i >= low:
        j = bisect_left(frauds, txs[i])
        if j == len(frauds) or frauds[j] != txs[i]:
            break
        start = txs[i][0]
        held = amount_of.get(txs[i][1])  # None only for a transaction later than the grace
        if held is not None:
            smallest = min(smallest, held.tx_amount)
        ratio = ratio_of.get(txs[i][1])
        if ratio is not None:
            lowest = min(lowest, ratio)
        i -= 1
    if start is None:
        return 0, 0.0, 0.0
    return t - start, *(0.0 if v == math.inf else v for v in (smallest, lowest))


class InMemoryFeatureStore(OnlineFeatureStore):
    """Sorted Python lists per customer and terminal, behind one lock. The embedded default."""

    def __init__(
        self,
        late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS,
        max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS,
    ) -> None:
        super().__init__(late_grace_seconds, max_skew_seconds)
        self._lock = threading.Lock()
        # (time, id, amount, outlier): outlier is the entry's own 30-day ratio above the limit,
        # fixed when it was scored (or published) and never revised.
        self._customers: dict[int, list[tuple[int, int, float, bool]]] = {}
        self._terminal_tx: dict[int, list[tuple[int, int]]] = {}  # (time, id)
        self._terminal_fraud: dict[int, list[tuple[int, int]]] = {}  # (time, id) of frauds
        self._versions: dict[int, Transaction] = {}  # id -> first version
        self._ratios: dict[int, float] = {}  # id -> its own 30-day ratio when first scored
        self._by_time: list[tuple[int, int]] = []  # heap of (time, id): prunes the id index
        self._clock: int | None = None
        self._batches: set[str] = set()

    def _score_and_record(self, tx: Transaction) -> tuple[Transaction, _Windows]:
        with self._lock:
            known = self._versions.get(tx.transaction_id)
            if known is None:
                self.guard(tx, self._clock)
                self._remember(tx)
            else:
                tx = known
            t, tid = tx.tx_time_seconds, tx.transaction_id
            bounds = _Bounds.at(t)
            # Prune from t, but never from beyond clock + grace: a transaction far ahead of the
            # others (up to the skew) cannot erase what the rest still needs.
            base = t if self._clock is None else min(t, self._clock + self.late_grace_seconds)
            self._clock = t if self._clock is None else max(t, self._clock)
            rows = self._customers.setdefault(tx.customer_id, [])
            at = bisect_left(rows, (t, tid))  # tx's place in (time, id) order
            new = at == len(rows) or rows[at][:2] != (t, tid)
            if new:
                rows.insert(at, (t, tid, tx.tx_amount, False))
            end = at + 1
            counts, sums = [], []
            for after in bounds.customer_after:
                start = _after(rows, after)
                counts.append(end - start)
                sums.append(sum(r[2] for r in rows[start:end]))
            k = _OWN_RATIO_WINDOW
            ratio = _own_ratio(tx.tx_amount, sums[k], counts[k])
            if new:
                rows[at] = (t, tid, tx.tx_amount, ratio > OUTLIER_RATIO)
            if known is None:
                self._ratios[tid] = ratio
            prior = sum(1 for r in rows[_after(rows, bounds.prior_after) : at] if r[3])
            cut = _after(rows, base - self.customer_retention)
            if cut:
                del rows[:cut]

            txs = self._terminal_tx.setdefault(tx.terminal_id, [])
            frauds = self._terminal_fraud.get(tx.terminal_id, [])
            tx_end, fraud_end = (
                _after(txs, bounds.terminal_upto),
                _after(frauds, bounds.terminal_upto),
            )
            t_counts = tuple(tx_end - _after(txs, a) for a in bounds.terminal_after)
            t_frauds = tuple(fraud_end - _after(frauds, a) for a in bounds.terminal_after)
            run_seconds, run_min, run_ratio = _fraud_run(
                txs, frauds, tx_end, bounds, t, self._versions, self._ratios
            )
            _insert(txs, (t, tid))
            cutoff = base - self.terminal_retention
            for lst in (txs, frauds):
                cut = _after(lst, cutoff)
                if cut:
                    del lst[:cut]
            self._prune_ids(cutoff)
        return tx, _Windows(
            tuple(counts), tuple(sums), t_counts, t_frauds, run_seconds, run_min, prior, run_ratio
        )

    def _remember(self, tx: Transaction) -> None:
        self._versions[tx.transaction_id] = tx
        heapq.heappush(self._by_time, (tx.tx_time_seconds, tx.transaction_id))

    def _prune_ids(self, cutoff: int) -> None:
        heap = self._by_time
        while heap and heap[0][0] <= cutoff:
            _, tid = heapq.heappop(heap)
            self._versions.pop(tid, None)
            self._ratios.pop(tid, None)

    def record_label(self, transaction_id: int, fraud: bool) -> Transaction | None:
        with self._lock:
            tx = self._versions.get(int(transaction_id))
            if tx is None:
                return None
            entry = (tx.tx_time_seconds, tx.transaction_id)
            _insert(self._terminal_tx.setdefault(tx.terminal_id, []), entry)
            frauds = self._terminal_fraud.setdefault(tx.terminal_id, [])
            if fraud:
                _insert(frauds, entry)
            else:
                i = bisect_left(frauds, entry)
                if i < len(frauds) and frauds[i] == entry:
                    del frauds[i]
        return tx

    def seen(self, transaction_id: int) -> Transaction | None:
        with self._lock:
            return self._versions.get(int(transaction_id))

    def clock(self) -> int | None:
        return self._clock

    def newest_batch(self) -> str | None:
        return max(self._batches, default=None)

    def publish_snapshot(self, clean_history: pl.DataFrame, batch_id: str | None = None) -> int:
        with self._lock:
            rows = self._snapshot_rows(clean_history, self._clock)
            if batch_id is not None:
                self._batches.add(batch_id)
            if rows is None:
                return 0
            newest = int(rows["tx_time_seconds"].max())
            customer_from = newest - self.customer_retention  # newest already includes the clock
            added = 0
            touched: set[int] = set()
            labels: dict[int, tuple[set, set]] = {}  # terminal -> (frauds, genuine) entries
            for tid, cid, term, amount, t, fraud, when, ratio, outlier in rows.iter_rows():
                known = self._versions.get(tid)
                if known is None:
                    known = Transaction(tid, when, cid, term, amount, t)
                    self._remember(known)
                    self._ratios[tid] = ratio
                    added += 1
                    if t > customer_from:
                        entry = (t, tid, float(amount), bool(outlier))
                        self._customers.setdefault(cid, []).append(entry)
                        touched.add(cid)
                    self._terminal_tx.setdefault(term, []).append((t, tid))
                entry = (known.tx_time_seconds, tid)
                frauds, genuine = labels.setdefault(known.terminal_id, (set(), set()))
                (frauds if fraud else genuine).add(entry)
            for cid in touched:
                self._customers[cid] = sorted(set(self._customers[cid]))
            for term, (frauds, genuine) in labels.items():
                self._terminal_tx[term] = sorted(set(self._terminal_tx.get(term, [])))
                old = set(self._terminal_fraud.get(term, []))
                self._terminal_fraud[term] = sorted((old - genuine) | frauds)
            self._clock = newest if self._clock is None else max(newest, self._clock)
        return added

    def clear(self) -> None:
        with self._lock:
            self._customers.clear()
            self._terminal_tx.clear()
            self._terminal_fraud.clear()
            self._versions.clear()
            self._ratios.clear()
            self._by_time.clear()
            self._batches.clear()
            self._clock = None


# --------------------------------------------------------------------------------------------
# Redis

# The scripts live in lua/ beside this module, read once at import (see each file's header).
_LUA_DIR = Path(__file__).with_name("lua")


def _lua(name: str) -> str:
    return (_LUA_DIR / name).read_text(encoding="utf-8")


_SCORE_LUA = _lua("score.lua")


_PUBLISH_LUA = _lua("publish.lua")


_SNAPSHOT_CHUNK = 500  # ZADD commands per pipeline round trip


def _customer_member(transaction_id: int, amount: float, outlier: bool | None = None) -> str:
    """`<20-digit id>:<amount>` (repr round-trips the float), then `:1` for an outlier entry or
    `:0` for another; without a flag, the form the scoring script completes itself."""
    member = f"{transaction_id:0{_ID_WIDTH}d}:{float(amount)!r}"
    return member if outlier is None else f"{member}:{int(outlier)}"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisFeatureStore(OnlineFeatureStore):
    """History in Redis sorted sets; one Lua script per scored transaction (atomic).

    Keys, under `prefix`: `cust:{id}` (members "<id>:<amount>:<outlier 1/0>", score = time;
    state written before the outlier flag, "<id>:<amount>", reads as not an outlier), `term:{id}:tx`
    and `term:{id}:fraud` (members = transaction ids, score = time), `tx:versions` (hash: id ->
    first version), `tx:ratios` (hash: id -> its own 30-day ratio when first scored or
    published), `tx:times` (id by time, to prune both), `clock` (newest time held) and
    `state:batches` (hash: batch id -> rows published). The script touches one customer and one
    terminal key and the shared id keys: fine on one Redis (or Sentinel); Redis Cluster would
    need hash tags or the parts split. `key_ttl_seconds` (wall clock) lets idle cards' keys
    expire; by default they are only pruned when the card is used again.
    """

    def __init__(
        self,
        redis_client: Any,
        prefix: str = "fraud:",
        late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS,
        key_ttl_seconds: int | None = None,
        max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS,
    ) -> None:
        super().__init__(late_grace_seconds, max_skew_seconds)
        self.redis = redis_client
        self.prefix = prefix
        self.key_ttl_seconds = key_ttl_seconds
        self._score = redis_client.register_script(_SCORE_LUA)
        self._publish = redis_client.register_script(_PUBLISH_LUA)
        self._shared = [
            f"{prefix}tx:versions",
            f"{prefix}tx:times",
            f"{prefix}clock",
            f"{prefix}tx:ratios",
        ]

    def _keys(self, customer_id: int, terminal_id: int) -> list[str]:
        return [self._customer_key(customer_id), *self._terminal_keys(terminal_id), *self._shared]

    def _customer_key(self, customer_id: int) -> str:
        return f"{self.prefix}cust:{customer_id}"

    def _terminal_keys(self, terminal_id: int) -> tuple[str, str]:
        return f"{self.prefix}term:{terminal_id}:tx", f"{self.prefix}term:{terminal_id}:fraud"

    def _score_and_record(self, tx: Transaction) -> tuple[Transaction, _Windows]:
        reply = self._score(**self._script_call(tx))
        return self._outcome(tx, reply)

    def _outcome(self, tx: Transaction, reply: Sequence[Any]) -> tuple[Transaction, _Windows]:
        status = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if status == "ok":
            return tx, self._windows(reply[1:])
        if status == "version":  # a retry: score the first version under this id
            held = Transaction.from_version(tx.transaction_id, reply[1])
            again = self._score(**self._script_call(held))
            return self._outcome(held, again)
        raise TimeRefused(tx, status, int(reply[1]), self)

    def features_for_many(
        self, txs: Sequence[Transaction | Mapping[str, Any]]
    ) -> list[Features | TimeRefused]:
        """One round trip for the whole batch: the scripts are pipelined and Redis runs them in
        the order given, each still atomic, exactly as if they were sent one by one."""
        txs = [t if isinstance(t, Transaction) else Transaction.from_mapping(t) for t in txs]
        if len(txs) <= 1:
            return super().features_for_many(txs)
        replies = self._run_pipelined([self._script_call(tx) for tx in txs])
        out: list[Features | TimeRefused] = []
        for tx, reply in zip(txs, replies, strict=True):
            try:
                out.append(_assemble(*self._outcome(tx, reply)))
            except TimeRefused as e:
                out.append(e)
        return out

    def _run_pipelined(self, calls: list[dict[str, list]]) -> list[Any]:
        """EVALSHA each call in one pipeline.

        Not redis-py's pipelined `Script`: it asks SCRIPT EXISTS first, a second round trip on
        every batch. Here a missing script (Redis restarted or its script cache flushed) is
        loaded and the pipeline sent again; the scripts that did run before are idempotent.
        """
        from redis.exceptions import NoScriptError

        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for call in calls:
                keys = call["keys"]
                pipe.evalsha(self._score.sha, len(keys), *keys, *call["args"])
            replies = pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                self._score.sha = self.redis.script_load(_SCORE_LUA)
                continue
            break
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _script_call(self, tx: Transaction) -> dict[str, list]:
        t, tid = tx.tx_time_seconds, tx.transaction_id
        bounds = _Bounds.at(t)
        args = [
            t,
            _customer_member(tid, tx.tx_amount),
            f"{tid:0{_ID_WIDTH}d}",
            tid,
            self.customer_retention,
            self.terminal_retention,
            self.key_ttl_seconds or 0,
            len(WINDOWS_DAYS),
            min(bounds.customer_after),
            bounds.terminal_upto,
            tx.version(),
            self.max_skew_seconds,
            *bounds.customer_after,
            *bounds.terminal_after,
            self.late_grace_seconds,
            bounds.terminal_upto - _RUN_SECONDS,
            _OWN_RATIO_WINDOW + 1,
            repr(OUTLIER_RATIO),
            bounds.prior_after,
        ]
        return {"keys": self._keys(tx.customer_id, tx.terminal_id), "args": args}

    @staticmethod
    def _windows(reply: Sequence[Any]) -> _Windows:
        n = len(WINDOWS_DAYS)
        return _Windows(
            customer_counts=tuple(int(reply[2 * i]) for i in range(n)),
            customer_sums=tuple(float(reply[2 * i + 1]) for i in range(n)),
            terminal_counts=tuple(int(reply[2 * n + 2 * i]) for i in range(n)),
            terminal_frauds=tuple(int(reply[2 * n + 2 * i + 1]) for i in range(n)),
            terminal_run_seconds=int(reply[4 * n]),
            terminal_run_min_amount=float(reply[4 * n + 1]),
            terminal_run_min_ratio=float(reply[4 * n + 2]),
            customer_prior_outliers=int(reply[4 * n + 3]),
        )

    def seen(self, transaction_id: int) -> Transaction | None:
        version = self.redis.hget(self._shared[0], str(int(transaction_id)))
        return None if version is None else Transaction.from_version(transaction_id, version)

    def clock(self) -> int | None:
        value = self.redis.get(self._shared[2])
        return None if value is None else int(value)

    def newest_batch(self) -> str | None:
        batches = self.redis.hkeys(f"{self.prefix}state:batches")
        return max((b.decode() if isinstance(b, bytes) else b for b in batches), default=None)

    def record_label(self, transaction_id: int, fraud: bool) -> Transaction | None:
        tx = self.seen(transaction_id)
        if tx is None:
            return None
        tx_key, fraud_key = self._terminal_keys(tx.terminal_id)
        member = str(tx.transaction_id)
        pipe = self.redis.pipeline(transaction=True)  # MULTI/EXEC: both sets change together
        pipe.zadd(tx_key, {member: tx.tx_time_seconds})
        if fraud:
            pipe.zadd(fraud_key, {member: tx.tx_time_seconds})
        else:
            pipe.zrem(fraud_key, member)
        if self.key_ttl_seconds:
            pipe.expire(tx_key, self.key_ttl_seconds)
            pipe.expire(fraud_key, self.key_ttl_seconds)
        pipe.execute()
        return tx

    def publish_snapshot(self, clean_history: pl.DataFrame, batch_id: str | None = None) -> int:
        rows = self._snapshot_rows(clean_history, self.clock())
        added = 0
        if rows is not None:
            newest = int(rows["tx_time_seconds"].max())
            clock = self.clock()
            newest = newest if clock is None else max(newest, clock)
            customer_from = newest - self.customer_retention
            records = rows.to_dicts()
            for i in range(0, len(records), _SNAPSHOT_CHUNK):
                added += self._publish_chunk(
                    records[i : i + _SNAPSHOT_CHUNK], customer_from, newest
                )
        if batch_id is not None:
            self.redis.hset(
                f"{self.prefix}state:batches", batch_id, rows.height if rows is not None else 0
            )
        return added

    def _publish_chunk(self, records: list[dict], customer_from: int, newest: int) -> int:
        held = self.redis.hmget(self._shared[0], [str(r["transaction_id"]) for r in records])
        keys, args = list(self._shared), [customer_from, newest]
        for r, version in zip(records, held, strict=True):
            tx = Transaction(
                r["transaction_id"], r["tx_datetime"], r["customer_id"], r["terminal_id"],
                r["tx_amount"], r["tx_time_seconds"],
            )  # fmt: skip
            label_tx = (
                tx if version is None else Transaction.from_version(tx.transaction_id, version)
            )
            keys += [
                self._customer_key(tx.customer_id),
                self._terminal_keys(tx.terminal_id)[0],
                self._terminal_keys(label_tx.terminal_id)[1],
            ]
            args += [
                tx.transaction_id,
                tx.tx_time_seconds,
                _customer_member(tx.transaction_id, tx.tx_amount, r["outlier"]),
                tx.version(),
                1 if r["tx_fraud"] else 0,
                label_tx.tx_time_seconds,
                repr(float(r["ratio_30d"])),
            ]
        return int(self._publish(keys=keys, args=args))

    def clear(self) -> None:
        """Delete every key under this store's prefix (SCAN + UNLINK; never FLUSHDB)."""
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.redis.unlink(*batch)
                batch = []
        if batch:
            self.redis.unlink(*batch)
