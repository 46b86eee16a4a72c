"""Hard business rules, evaluated before the model.

Rules see the RAW ids (the bank's operators maintain block lists in their own ids); nothing
else in serving keeps raw ids. The first matching rule decides; its name is reported as
`decided_by = "rule:<name>"`. Rules only ever block: allowing is the model's job.

    blocked_customer   the customer (card) id is on the block list
    blocked_terminal   the terminal id is on the block list
    max_amount         the amount is above the hard limit
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BLOCK, ALLOW = "block", "allow"
REVIEW = "review"  # the model only: scores in [review_threshold, threshold) go to the queue


@dataclass(frozen=True)
class RuleDecision:
    rule: str
    decision: str
    reason: str

    @property
    def decided_by(self) -> str:
        return f"rule:{self.rule}"


@dataclass(frozen=True)
class RuleSet:
    blocked_customers: frozenset[int] = frozenset()
    blocked_terminals: frozenset[int] = frozenset()
    max_amount: float | None = None

    def __init__(
        self,
        blocked_customers: Iterable[int] = (),
        blocked_terminals: Iterable[int] = (),
        max_amount: float | None = None,
    ) -> None:
        if max_amount is not None and not max_amount > 0:
            raise ValueError(f"max_amount must be positive, got {max_amount!r}")
        object.__setattr__(self, "blocked_customers", frozenset(int(i) for i in blocked_customers))
        object.__setattr__(self, "blocked_terminals", frozenset(int(i) for i in blocked_terminals))
        object.__setattr__(self, "max_amount", max_amount)

    @classmethod
    def from_settings(cls, settings: Any) -> RuleSet:
        return cls(
            settings.rule_blocked_customers,
            settings.rule_blocked_terminals,
            settings.rule_max_amount,
        )

    @property
    def names(self) -> list[str]:
        """The rules that are switched on."""
        active = []
        if self.blocked_customers:
            active.append("blocked_customer")
        if self.blocked_terminals:
            active.append("blocked_terminal")
        if self.max_amount is not None:
            active.append("max_amount")
        return active

    def evaluate(self, customer_id: int, terminal_id: int, tx_amount: float) -> RuleDecision | None:
        """The first rule that fires, or None (the model decides)."""
        if customer_id in self.blocked_customers:
            return RuleDecision("blocked_customer", BLOCK, "customer is on the block list")
        if terminal_id in self.blocked_terminals:
            return RuleDecision("blocked_terminal", BLOCK, "terminal is on the block list")
        if self.max_amount is not None and tx_amount > self.max_amount:
            return RuleDecision(
                "max_amount", BLOCK, f"amount {tx_amount} is above the limit {self.max_amount}"
            )
        return None
