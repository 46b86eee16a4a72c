"""What a well-formed row must also satisfy to enter the clean table (the data contract).

Parsing decides whether a line is a transaction at all; these rules decide whether we believe it:
ids are not negative, amounts stay within a configured maximum, timestamps fall inside the batch's
period, the terminal is one the bank knows (its terminal registry), and no other batch has already
committed the transaction id. A row breaking a rule is quarantined with the rule's reason (the
first one it breaks, in the order of `Rule`). The checks are vectorised: a batch whose rows all
pass costs a few array comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import polars as pl

from fraud_assets.rawdata.format import BatchPeriod

DEFAULT_MAX_AMOUNT = 10_000_000.0
# Without a registry, terminal ids above this are not ours (broken exports carry ids like
# 89518096); with one, the registry decides.
DEFAULT_MAX_TERMINAL_ID = 999_999
_NO_BOUND = 2**63 - 1


class Rule(StrEnum):
    """Quarantine reasons of rows that parse but break the contract."""

    NEGATIVE_ID = "negative_id"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum"
    UNKNOWN_TERMINAL = "unknown_terminal"  # not in the terminal registry
    OUTSIDE_PERIOD = "outside_period"  # timestamp outside the batch's declared or inferred days
    DUPLICATE_ID = "duplicate_id"  # the id is committed by another batch already


# ids -> True where another batch has committed that id
CommittedLookup = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RowRules:
    max_amount: float = DEFAULT_MAX_AMOUNT
    max_terminal_id: int = DEFAULT_MAX_TERMINAL_ID  # used only when there is no registry
    terminals: np.ndarray | None = None  # the registry's raw terminal ids, sorted, distinct
    period: BatchPeriod | None = None
    committed: CommittedLookup | None = None

    @property
    def terminal_bound(self) -> int:
        """The parser's out-of-range bound: the fixed maximum, or none once a registry decides."""
        return _NO_BOUND if self.terminals is not None else self.max_terminal_id

    def reasons(self, rows: pl.DataFrame) -> pl.Series | None:
        """One reason per row (a `Rule` value, null where the row keeps to every rule); None
        when every row keeps to every rule (the usual case, decided without building strings).

        `rows` are parsed transactions: non-null `transaction_id`, `tx_datetime`, `terminal_id`
        and `tx_amount`.
        """
        if rows.height == 0:
            return None
        ids = rows["transaction_id"].to_numpy()
        broken: list[tuple[np.ndarray, Rule]] = [
            (ids < 0, Rule.NEGATIVE_ID),
            (rows["tx_amount"].to_numpy() > self.max_amount, Rule.AMOUNT_ABOVE_MAXIMUM),
        ]
        if self.terminals is not None:
            known = _member(rows["terminal_id"].to_numpy(), self.terminals)
            broken.append((~known, Rule.UNKNOWN_TERMINAL))
        if self.period is not None:
            stamps = rows["tx_datetime"].to_numpy()
            start = np.datetime64(self.period.start, "us")
            end = np.datetime64(self.period.end, "us")
            broken.append(((stamps < start) | (stamps > end), Rule.OUTSIDE_PERIOD))
        if self.committed is not None:
            broken.append((self.committed(ids), Rule.DUPLICATE_ID))
        any_broken = np.logical_or.reduce([flags for flags, _ in broken])
        if not any_broken.any():
            return None
        # The first rule broken names the row (np.select takes the first true condition).
        codes = np.select([flags for flags, _ in broken], range(1, len(broken) + 1), 0)
        names = {0: None} | {i: rule.value for i, (_, rule) in enumerate(broken, 1)}
        return pl.Series("reason", codes).replace_strict(names, return_dtype=pl.String)


_TABLE_LIMIT = 1 << 22  # registries with ids below this are looked up in a boolean table


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values[i] in sorted_set: a table lookup for small ids, else a binary search (no hash
    table to build per batch)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    low, high = int(sorted_set[0]), int(sorted_set[-1])
    if low >= 0 and high < _TABLE_LIMIT:
        table = np.zeros(high + 2, dtype=bool)  # the last slot stands for every other id
        table[sorted_set] = True
        return table[np.clip(values, -1, high + 1)]
    return _search(values, sorted_set)


def _search(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values)
    return sorted_set[np.minimum(at, len(sorted_set) - 1)] == values


def committed_in(batches: dict[str, np.ndarray], batch_id: str) -> CommittedLookup:
    """A lookup over the sorted ids each other batch committed (`batches`: batch -> ids).

    Ids grow with time in an export, so most batches' id ranges do not overlap the ids asked
    about and are skipped without a search.
    """

    def committed(ids: np.ndarray) -> np.ndarray:
        found = np.zeros(len(ids), dtype=bool)
        if len(ids) == 0:
            return found
        low, high = ids.min(), ids.max()
        for other, known in batches.items():
            if other == batch_id or len(known) == 0 or known[0] > high or known[-1] < low:
                continue
            found |= _search(ids, known)
        return found

    return committed
