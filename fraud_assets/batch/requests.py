"""What the landing sensor asks for: deliveries of batches, cut into ranged runs.

A delivery is one arrival of a batch's content. Each batch's deliveries are numbered, so a batch
that comes back with any different content, even content it had before (A -> B -> A), is a new
delivery with a new number, and so a new run; the same delivery seen again is not.

Runs are ranges of batch partitions that are contiguous in the partitions' order (Dagster runs a
range start..end), at most `max_per_run` batches each; a single batch gets a plain one-batch run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    batch_id: str
    fingerprint: str
    number: int  # 1 for the first content seen, +1 for every change

    @property
    def key(self) -> str:
        return f"{self.batch_id}:{self.number}"

    @property
    def reason(self) -> str:
        if self.number == 1:
            return "new batch"
        return f"re-landed with new content (delivery {self.number})"


@dataclass(frozen=True)
class PlannedRun:
    batch_ids: list[str]  # in partition order
    run_key: str
    reason: str


class DeliveryCursor:
    """batch id -> (fingerprint of its latest delivery, that delivery's number)."""

    def __init__(self, seen: dict[str, tuple[str, int]] | None = None) -> None:
        self.seen = dict(seen or {})

    @classmethod
    def from_json(cls, text: str | None) -> DeliveryCursor:
        if not text:
            return cls()
        data = json.loads(text)
        if "deliveries" not in data:  # the older cursor: batch -> fingerprint
            return cls({b: (f, 1) for b, f in data.items()})
        return cls({b: (f, int(n)) for b, (f, n) in data["deliveries"].items()})

    def to_json(self) -> str:
        return json.dumps(
            {"deliveries": {b: list(v) for b, v in self.seen.items()}}, sort_keys=True
        )

    def arrivals(self, landed: Iterable[tuple[str, str]]) -> list[Delivery]:
        """The deliveries among (batch id, fingerprint) pairs not seen before; records them."""
        out = []
        for batch_id, fingerprint in landed:
            previous = self.seen.get(batch_id)
            if previous is not None and previous[0] == fingerprint:
                continue
            number = previous[1] + 1 if previous is not None else 1
            self.seen[batch_id] = (fingerprint, number)
            out.append(Delivery(batch_id, fingerprint, number))
        return out


def contiguous_ranges(
    batch_ids: Iterable[str], order: Sequence[str], max_per_run: int
) -> list[list[str]]:
    """`batch_ids` cut into runs of neighbours in `order` (the partitions' order), each at most
    `max_per_run` long; a batch not in `order` is left out."""
    position = {key: i for i, key in enumerate(order)}
    wanted = sorted({b for b in batch_ids if b in position}, key=position.__getitem__)
    runs: list[list[str]] = []
    for batch_id in wanted:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and position[batch_id] == position[last] + 1
            and len(runs[-1]) < max_per_run
        ):
            runs[-1].append(batch_id)
        else:
            runs.append([batch_id])
    return runs


def plan_runs(
    items: dict[str, tuple[str, str]], order: Sequence[str], max_per_run: int, prefix: str
) -> list[PlannedRun]:
    """Runs for `items` (batch id -> (idempotency key, reason)): one per contiguous range.

    A run's key digests the keys of its batches, so the same situation asks for the same runs.
    """
    runs = []
    for batch_ids in contiguous_ranges(items, order, max_per_run):
        keys = [items[b][0] for b in batch_ids]
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
        span = batch_ids[0] if len(batch_ids) == 1 else f"{batch_ids[0]}..{batch_ids[-1]}"
        reasons = _summarise([(b, items[b][1]) for b in batch_ids])
        runs.append(PlannedRun(batch_ids, f"{prefix}:{span}:{digest}", reasons))
    return runs


def _summarise(items: list[tuple[str, str]], limit: int = 5) -> str:
    """ "new batch: 2024-03-01..2024-03-31 (31)"-style lines, one per distinct reason."""
    by_reason: dict[str, list[str]] = {}
    for batch_id, reason in items:
        by_reason.setdefault(reason, []).append(batch_id)
    parts = []
    for reason, batches in list(by_reason.items())[:limit]:
        span = batches[0] if len(batches) == 1 else f"{batches[0]}..{batches[-1]} ({len(batches)})"
        parts.append(f"{reason}: {span}")
    if len(by_reason) > limit:
        parts.append(f"and {len(by_reason) - limit} other reasons")
    return "; ".join(parts)[:2000]
