"""Online features: for each incoming transaction, exactly the batch features of `spec`.

The batch engine (`features.polars_engine`) sees a whole table; the scoring service sees one
transaction at a time. An `OnlineFeatureStore` keeps, per customer and per terminal, just enough
recent history to compute the same numbers, and updates it with every scored transaction.

Public API
    Transaction                  the (already pseudonymised) raw transaction the service receives
    OnlineFeatureStore           the interface; `features_for`, `record_label`, `publish_snapshot`
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
    Idempotence. Re-scoring the same transaction (a client retry) does not count it twice: the
    entries are keyed by (time, id, amount). A retry reads the history as it is then, which is
    the batch answer again. Labels can be corrected (fraud -> genuine and back).
    Snapshot. `publish_snapshot(clean)` bulk-loads the newest 30 (customers) and 37 (terminals)
    days, plus the grace, of a batch clean table, labels (`tx_fraud`) included. It merges with
    what is stored (upserts), so loading it twice, or over live state, changes nothing.

Both stores compute the windows from the same bounds and assemble the features with the same
code (`_assemble`), so they return identical values.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from fraud_assets.features.spec import (
    FEATURE_COLUMNS,
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)

CUSTOMER_RETENTION_SECONDS = max(WINDOWS_DAYS) * SECONDS_PER_DAY
TERMINAL_RETENTION_SECONDS = (LABEL_DELAY_DAYS + max(WINDOWS_DAYS)) * SECONDS_PER_DAY
DEFAULT_LATE_GRACE_SECONDS = SECONDS_PER_DAY
_DELAY_SECONDS = LABEL_DELAY_DAYS * SECONDS_PER_DAY
_ID_WIDTH = 20  # zero-padded ids sort as strings the way they sort as numbers (int64 < 10**19)
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
    terminal_upto: int  # terminal windows: time <= t - d ...
    terminal_after: tuple[int, ...]  # ... and time > t - d - w

    @classmethod
    def at(cls, t: int) -> _Bounds:
        upto = t - _DELAY_SECONDS
        return cls(
            customer_after=tuple(t - w * SECONDS_PER_DAY for w in WINDOWS_DAYS),
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
    out["customer_amount_ratio_30d"] = tx.tx_amount / out["customer_avg_amount_30d"]
    # In spec order; a KeyError here means spec gained a feature serving does not compute yet.
    return {name: out[name] for name in FEATURE_COLUMNS}


class OnlineFeatureStore(ABC):
    """State for online features. Implementations differ only in where the history lives."""

    def __init__(self, late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS) -> None:
        if late_grace_seconds < 0:
            raise ValueError("late_grace_seconds must be >= 0")
        self.late_grace_seconds = late_grace_seconds
        self.customer_retention = CUSTOMER_RETENTION_SECONDS + late_grace_seconds
        self.terminal_retention = TERMINAL_RETENTION_SECONDS + late_grace_seconds

    def features_for(self, tx: Transaction | Mapping[str, Any]) -> Features:
        """FEATURE_COLUMNS for `tx` (itself included in its customer windows); records `tx`.

        One atomic step per transaction: concurrent requests for the same card never lose an
        update, and each sees a consistent history.
        """
        if not isinstance(tx, Transaction):
            tx = Transaction.from_mapping(tx)
        return _assemble(tx, self._score_and_record(tx, _Bounds.at(tx.tx_time_seconds)))

    def features_for_many(self, txs: Sequence[Transaction]) -> list[Features]:
        """`features_for` of each transaction, one after the other in the order given."""
        return [self.features_for(tx) for tx in txs]

    @abstractmethod
    def _score_and_record(self, tx: Transaction, bounds: _Bounds) -> _Windows:
        """Atomically: add tx to its customer's and terminal's history, read the windows."""

    @abstractmethod
    def record_label(
        self, terminal_id: int, tx_time_seconds: int, transaction_id: int, fraud: bool
    ) -> None:
        """Label feedback for one transaction (adds it to the terminal's history if missing)."""

    @abstractmethod
    def publish_snapshot(self, clean_history: pl.DataFrame) -> None:
        """Merge the newest retained days of a batch clean table (labels included) into state."""

    @abstractmethod
    def clear(self) -> None:
        """Forget all state of this store."""

    def _snapshot_parts(self, clean: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        missing = [c for c in SNAPSHOT_COLUMNS if c not in clean.columns]
        if missing:
            raise ValueError(f"snapshot needs clean-table columns {missing}")
        if clean.height == 0:
            return None
        newest = clean["tx_time_seconds"].max()
        customers = clean.filter(
            pl.col("tx_time_seconds") > newest - self.customer_retention
        ).select("customer_id", "tx_time_seconds", "transaction_id", "tx_amount")
        terminals = clean.filter(
            pl.col("tx_time_seconds") > newest - self.terminal_retention
        ).select("terminal_id", "tx_time_seconds", "transaction_id", "tx_fraud")
        # One row per customer / terminal, holding lists: each store loads them its own way.
        by_customer = customers.group_by("customer_id").agg(pl.all())
        by_terminal = terminals.group_by("terminal_id").agg(
            pl.col("tx_time_seconds"),
            pl.col("transaction_id"),
            pl.col("tx_fraud").cast(pl.Boolean),
        )
        return by_customer, by_terminal


# --------------------------------------------------------------------------------------------
# In process


def _insert(rows: list, entry: tuple) -> None:
    i = bisect_left(rows, entry)
    if i == len(rows) or rows[i] != entry:
        rows.insert(i, entry)


def _after(rows: list, seconds: int) -> int:
    """Index of the first entry with time > seconds (entries are tuples led by time)."""
    return bisect_right(rows, (seconds, math.inf))


class InMemoryFeatureStore(OnlineFeatureStore):
    """Sorted Python lists per customer and terminal, behind one lock. The embedded default."""

    def __init__(self, late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS) -> None:
        super().__init__(late_grace_seconds)
        self._lock = threading.Lock()
        self._customers: dict[int, list[tuple[int, int, float]]] = {}  # (time, id, amount)
        self._terminal_tx: dict[int, list[tuple[int, int]]] = {}  # (time, id)
        self._terminal_fraud: dict[int, list[tuple[int, int]]] = {}  # (time, id) of frauds

    def _score_and_record(self, tx: Transaction, bounds: _Bounds) -> _Windows:
        t, tid = tx.tx_time_seconds, tx.transaction_id
        with self._lock:
            rows = self._customers.setdefault(tx.customer_id, [])
            _insert(rows, (t, tid, tx.tx_amount))
            end = bisect_right(rows, (t, tid, math.inf))  # just after tx in (time, id) order
            counts, sums = [], []
            for after in bounds.customer_after:
                start = _after(rows, after)
                counts.append(end - start)
                sums.append(sum(r[2] for r in rows[start:end]))
            cut = _after(rows, t - self.customer_retention)
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
            _insert(txs, (t, tid))
            cutoff = t - self.terminal_retention
            for lst in (txs, frauds):
                cut = _after(lst, cutoff)
                if cut:
                    del lst[:cut]
        return _Windows(tuple(counts), tuple(sums), t_counts, t_frauds)

    def record_label(
        self, terminal_id: int, tx_time_seconds: int, transaction_id: int, fraud: bool
    ) -> None:
        entry = (int(tx_time_seconds), int(transaction_id))
        with self._lock:
            _insert(self._terminal_tx.setdefault(terminal_id, []), entry)
            frauds = self._terminal_fraud.setdefault(terminal_id, [])
            if fraud:
                _insert(frauds, entry)
            else:
                i = bisect_left(frauds, entry)
                if i < len(frauds) and frauds[i] == entry:
                    del frauds[i]

    def publish_snapshot(self, clean_history: pl.DataFrame) -> None:
        parts = self._snapshot_parts(clean_history)
        if parts is None:
            return
        by_customer, by_terminal = parts
        with self._lock:
            for cid, times, ids, amounts in by_customer.iter_rows():
                old = self._customers.get(cid, [])
                self._customers[cid] = sorted(set(old).union(zip(times, ids, amounts, strict=True)))
            for term, times, ids, fraud in by_terminal.iter_rows():
                entries = list(zip(times, ids, strict=True))
                labelled = {e for e, f in zip(entries, fraud, strict=True) if f}
                genuine = set(entries) - labelled
                old_tx = self._terminal_tx.get(term, [])
                old_fraud = self._terminal_fraud.get(term, [])
                self._terminal_tx[term] = sorted(set(old_tx).union(entries))
                self._terminal_fraud[term] = sorted((set(old_fraud) - genuine) | labelled)

    def clear(self) -> None:
        with self._lock:
            self._customers.clear()
            self._terminal_tx.clear()
            self._terminal_fraud.clear()


# --------------------------------------------------------------------------------------------
# Redis

# KEYS: customer zset, terminal zset, terminal fraud zset.
# ARGV: 1 t, 2 customer member, 3 padded id, 4 terminal member, 5 customer prune cutoff,
#       6 terminal prune cutoff, 7 ttl (0: none), 8 n windows, 9 widest customer lower edge,
#       10 terminal upper edge, 11..10+n customer lower edges, 11+n..10+2n terminal lower edges.
# Customer members are "<20-digit id>:<amount>" scored by time: ZRANGEBYSCORE returns them in
# (time, id) order, and members in the current second with a larger id are skipped. Sums are
# returned as %.17g strings (a Lua number reply would be truncated to an integer).
_SCORE_LUA = """
local t = tonumber(ARGV[1])
local pid = ARGV[3]
local n = tonumber(ARGV[8])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[9], ARGV[1], 'WITHSCORES')
local counts, sums, lows = {}, {}, {}
for i = 1, n do
  counts[i] = 0
  sums[i] = 0
  lows[i] = tonumber(ARGV[10 + i])
end
for j = 1, #rows, 2 do
  local member = rows[j]
  local s = tonumber(rows[j + 1])
  if s < t or string.sub(member, 1, 20) <= pid then
    local amount = tonumber(string.sub(member, 22))
    for i = 1, n do
      if s > lows[i] then
        counts[i] = counts[i] + 1
        sums[i] = sums[i] + amount
      end
    end
  end
end
local out = {}
for i = 1, n do
  out[#out + 1] = counts[i]
  out[#out + 1] = string.format('%.17g', sums[i])
end
for i = 1, n do
  local low = '(' .. ARGV[10 + n + i]
  out[#out + 1] = redis.call('ZCOUNT', KEYS[2], low, ARGV[10])
  out[#out + 1] = redis.call('ZCOUNT', KEYS[3], low, ARGV[10])
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
end
return out
"""

_SNAPSHOT_CHUNK = 500  # ZADD commands per pipeline round trip


def _customer_member(transaction_id: int, amount: float) -> str:
    return f"{transaction_id:0{_ID_WIDTH}d}:{float(amount)!r}"  # repr round-trips the float


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisFeatureStore(OnlineFeatureStore):
    """History in Redis sorted sets; one Lua script per scored transaction (atomic).

    Keys, under `prefix`: `cust:{id}` (members "<id>:<amount>", score = time), `term:{id}:tx`
    and `term:{id}:fraud` (members = transaction ids, score = time). The script touches one
    customer and one terminal key: fine on one Redis (or Sentinel); Redis Cluster would need the
    customer and terminal parts split into two scripts (each still atomic on its own keys).
    `key_ttl_seconds` (wall clock) lets idle cards' keys expire; by default they are only pruned
    when the card is used again.
    """

    def __init__(
        self,
        redis_client: Any,
        prefix: str = "fraud:",
        late_grace_seconds: int = DEFAULT_LATE_GRACE_SECONDS,
        key_ttl_seconds: int | None = None,
    ) -> None:
        super().__init__(late_grace_seconds)
        self.redis = redis_client
        self.prefix = prefix
        self.key_ttl_seconds = key_ttl_seconds
        self._score = redis_client.register_script(_SCORE_LUA)

    def _keys(self, customer_id: int, terminal_id: int) -> list[str]:
        return [self._customer_key(customer_id), *self._terminal_keys(terminal_id)]

    def _customer_key(self, customer_id: int) -> str:
        return f"{self.prefix}cust:{customer_id}"

    def _terminal_keys(self, terminal_id: int) -> tuple[str, str]:
        return f"{self.prefix}term:{terminal_id}:tx", f"{self.prefix}term:{terminal_id}:fraud"

    def _score_and_record(self, tx: Transaction, bounds: _Bounds) -> _Windows:
        return self._windows(self._score(**self._script_call(tx, bounds)))

    def features_for_many(self, txs: Sequence[Transaction]) -> list[Features]:
        """One round trip for the whole batch: the scripts are pipelined and Redis runs them in
        the order given, each still atomic, exactly as if they were sent one by one."""
        if len(txs) <= 1:
            return super().features_for_many(txs)
        calls = [self._script_call(tx, _Bounds.at(tx.tx_time_seconds)) for tx in txs]
        replies = self._run_pipelined(calls)
        return [_assemble(tx, self._windows(r)) for tx, r in zip(txs, replies, strict=True)]

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

    def _script_call(self, tx: Transaction, bounds: _Bounds) -> dict[str, list]:
        t, tid = tx.tx_time_seconds, tx.transaction_id
        args = [
            t,
            _customer_member(tid, tx.tx_amount),
            f"{tid:0{_ID_WIDTH}d}",
            tid,
            t - self.customer_retention,
            t - self.terminal_retention,
            self.key_ttl_seconds or 0,
            len(WINDOWS_DAYS),
            min(bounds.customer_after),
            bounds.terminal_upto,
            *bounds.customer_after,
            *bounds.terminal_after,
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
        )

    def record_label(
        self, terminal_id: int, tx_time_seconds: int, transaction_id: int, fraud: bool
    ) -> None:
        tx_key, fraud_key = self._terminal_keys(terminal_id)
        member = str(int(transaction_id))
        pipe = self.redis.pipeline(transaction=True)  # MULTI/EXEC: both sets change together
        pipe.zadd(tx_key, {member: int(tx_time_seconds)})
        if fraud:
            pipe.zadd(fraud_key, {member: int(tx_time_seconds)})
        else:
            pipe.zrem(fraud_key, member)
        if self.key_ttl_seconds:
            pipe.expire(tx_key, self.key_ttl_seconds)
            pipe.expire(fraud_key, self.key_ttl_seconds)
        pipe.execute()

    def publish_snapshot(self, clean_history: pl.DataFrame) -> None:
        parts = self._snapshot_parts(clean_history)
        if parts is None:
            return
        by_customer, by_terminal = parts
        pipe = self.redis.pipeline(transaction=False)
        queued = 0

        def flush(force: bool = False) -> None:
            nonlocal queued
            if queued and (force or queued >= _SNAPSHOT_CHUNK):
                pipe.execute()
                queued = 0

        for cid, times, ids, amounts in by_customer.iter_rows():
            key = self._customer_key(cid)
            pipe.zadd(
                key,
                {_customer_member(i, a): s for s, i, a in zip(times, ids, amounts, strict=True)},
            )
            queued += 1
            if self.key_ttl_seconds:
                pipe.expire(key, self.key_ttl_seconds)
            flush()
        for term, times, ids, fraud in by_terminal.iter_rows():
            tx_key, fraud_key = self._terminal_keys(term)
            pipe.zadd(tx_key, {str(i): s for s, i in zip(times, ids, strict=True)})
            frauds = {str(i): s for s, i, f in zip(times, ids, fraud, strict=True) if f}
            genuine = [str(i) for i, f in zip(ids, fraud, strict=True) if not f]
            if frauds:
                pipe.zadd(fraud_key, frauds)
            if genuine:
                pipe.zrem(fraud_key, *genuine)
            if self.key_ttl_seconds:
                pipe.expire(tx_key, self.key_ttl_seconds)
                pipe.expire(fraud_key, self.key_ttl_seconds)
            queued += 1
            flush()
        flush(force=True)

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
