"""Which batches must run again because of others: refused ones whose history has landed, and
ones whose features read a version of a batch that has since changed.

Each rerun carries a key that names the situation it answers (the refused clean version, or the
set of history versions now current), so asking again in the same situation asks for nothing new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fraud_assets.batch.state import Refusal, history_versions
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import BatchCoverage, missing_history


@dataclass(frozen=True)
class Rerun:
    batch_id: str
    reason: str
    key: str  # the same situation gives the same key


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _names(batches: list[str], limit: int = 3) -> str:
    shown = ", ".join(batches[:limit])
    return shown + (f" and {len(batches) - limit} more" if len(batches) > limit else "")


def history_retries(known: dict[str, BatchCoverage], refused: dict[str, Refusal]) -> list[Rerun]:
    """Refused batches whose look-back history is complete now: each asked for once."""
    out = []
    for batch_id, refusal in sorted(refused.items()):
        batch = known.get(batch_id)
        if batch is None or batch.content != refusal.clean_content:
            continue  # re-ingested since: that run decided afresh
        if missing_history(batch, known, LOOKBACK_DAYS):
            continue
        reason = f"history now complete for {batch_id} (was missing {_names(refusal.missing)})"
        out.append(Rerun(batch_id, reason, f"retry:{batch_id}:{refusal.clean_content}"))
    return out


def stale_features(
    known: dict[str, BatchCoverage], lineages: dict[str, dict[str, str]]
) -> list[Rerun]:
    """Batches whose features read clean versions that are no longer the current ones."""
    out = []
    for batch_id, used in sorted(lineages.items()):
        batch = known.get(batch_id)
        if batch is None:
            continue
        current = history_versions(batch, known)
        if current == used:
            continue
        changed = sorted(b for b in current if b in used and current[b] != used[b])
        added = sorted(b for b in current if b not in used)
        removed = sorted(b for b in used if b not in current)
        parts = []
        if changed:
            parts.append(f"{_names(changed)} re-landed")
        if added:
            parts.append(f"{_names(added)} landed in its look-back")
        if removed:
            parts.append(f"{_names(removed)} no longer there")
        reason = f"history of {batch_id} changed: " + "; ".join(parts)
        out.append(Rerun(batch_id, reason, f"refresh:{batch_id}:{_digest(current)}"))
    return out
