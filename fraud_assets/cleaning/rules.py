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

from fraud_assets.raw_format import BatchPeriod

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

    def reasons(self, rows: pl.DataFrame) -> pl.Series:
        """One reason per row (a `Rule` value), null where the row keeps to every rule.

        `rows` are parsed transactions: non-null `transaction_id`, `tx_datetime`, `terminal_id`
        and `tx_amount`.
        """
        c = pl.col
        checks: list[tuple[pl.Expr, Rule]] = [
            (c("transaction_id") < 0, Rule.NEGATIVE_ID),
            (c("tx_amount") > self.max_amount, Rule.AMOUNT_ABOVE_MAXIMUM),
        ]
        flags: dict[str, np.ndarray] = {}
        if self.terminals is not None:
            flags["_unknown"] = ~_member(rows["terminal_id"].to_numpy(), self.terminals)
            checks.append((c("_unknown"), Rule.UNKNOWN_TERMINAL))
        if self.period is not None:
            inside = c("tx_datetime").is_between(pl.lit(self.period.start), pl.lit(self.period.end))
            checks.append((~inside, Rule.OUTSIDE_PERIOD))
        if self.committed is not None and rows.height:
            flags["_committed"] = self.committed(rows["transaction_id"].to_numpy())
            checks.append((c("_committed"), Rule.DUPLICATE_ID))
        reason = pl.when(checks[0][0]).then(pl.lit(checks[0][1].value))
        for condition, rule in checks[1:]:
            reason = reason.when(condition).then(pl.lit(rule.value))
        frame = rows.with_columns(**{k: pl.Series(v) for k, v in flags.items()}) if flags else rows
        return frame.select(reason.otherwise(None).cast(pl.String).alias("reason")).to_series()


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """values[i] in sorted_set, by binary search (no hash table to build per batch)."""
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
            found |= _member(ids, known)
        return found

    return committed
