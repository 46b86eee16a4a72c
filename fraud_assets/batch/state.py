"""What the lake remembers about each batch's features, so that dependent re-runs can be decided.

    {lake}/features/_lineage/{batch}.json   the clean version of every batch its features read
    {lake}/features/_refused/{batch}.json   why its features were refused (look-back dates missing)

A batch's features depend on the clean rows of every batch covering its look-back window
(LOOKBACK_DAYS before its first date up to its last date). Recording which version of each they
read lets a later tick see when one of them changed (re-landed) or a new one appeared.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import FEATURES, BatchCoverage, Lake
from fraud_assets.lake.atomic import write_json_atomic

LINEAGE = "_lineage"
REFUSED = "_refused"


@dataclass(frozen=True)
class Refusal:
    batch_id: str
    missing: list[str]  # ISO dates
    clean_content: str  # the clean version that was refused


def window_of(batch: BatchCoverage) -> tuple[dt.date, dt.date]:
    first = dt.date.fromisoformat(batch.first_date) - dt.timedelta(days=LOOKBACK_DAYS)
    return first, dt.date.fromisoformat(batch.last_date)


def history_versions(batch: BatchCoverage, known: dict[str, BatchCoverage]) -> dict[str, str]:
    """Clean version of every batch whose dates overlap this batch's look-back window."""
    first, last = window_of(batch)
    out = {}
    for other in known.values():
        lo, hi = dt.date.fromisoformat(other.first_date), dt.date.fromisoformat(other.last_date)
        if lo <= last and hi >= first:
            out[other.batch_id] = other.content
    return dict(sorted(out.items()))


def _write(lake: Lake, folder: str, batch_id: str, data: dict) -> None:
    write_json_atomic(lake.fs, lake.path(FEATURES, folder, f"{batch_id}.json"), data)


def _read_all(lake: Lake, folder: str) -> dict[str, dict]:
    lake.fs.invalidate_cache(lake.root)
    out = {}
    for path in lake.fs.glob(lake.path(FEATURES, folder, "*.json")):
        data = json.loads(lake.fs.cat_file(path))
        out[data["batch_id"]] = data
    return out


def _remove(lake: Lake, folder: str, batch_id: str) -> None:
    path = lake.path(FEATURES, folder, f"{batch_id}.json")
    if lake.fs.exists(path):
        lake.fs.rm(path)


def record_features(lake: Lake, batch_id: str, history: dict[str, str]) -> None:
    """The batch's features were written from these clean versions; it is no longer refused."""
    _write(lake, LINEAGE, batch_id, {"batch_id": batch_id, "history": history})
    _remove(lake, REFUSED, batch_id)


def record_refusal(lake: Lake, batch_id: str, missing: list[dt.date], clean_content: str) -> None:
    data = {
        "batch_id": batch_id,
        "missing": [d.isoformat() for d in missing],
        "clean_content": clean_content,
    }
    _write(lake, REFUSED, batch_id, data)


def lineages(lake: Lake) -> dict[str, dict[str, str]]:
    return {b: data["history"] for b, data in _read_all(lake, LINEAGE).items()}


def refusals(lake: Lake) -> dict[str, Refusal]:
    return {
        b: Refusal(b, data["missing"], data["clean_content"])
        for b, data in _read_all(lake, REFUSED).items()
    }
