"""Full Evidently drift reports, rendered when someone first opens one and then kept.

A batch's drift run stores what its verdict compared (the reference, the champion version whose
scores were compared, the sampling) beside the report's place in the lake:

    {lake}/reports/drift/{batch}.json   the spec: enough to rebuild the exact same comparison
    {lake}/reports/drift/{batch}.html   the Evidently report, once rendered

Rendering imports Evidently and takes seconds, so batch runs skip it unless asked to; the report
server renders on the first request and keeps the file. A new drift run of the batch replaces the
spec and drops the old HTML.
"""

from __future__ import annotations

import json

from fraud_assets.lake import FEATURES, REPORTS, Lake
from fraud_assets.lake.atomic import write_json_atomic

DRIFT = "drift"


def _path(lake: Lake, batch_id: str, suffix: str) -> str:
    return lake.path(REPORTS, DRIFT, f"{batch_id}.{suffix}")


def save_spec(lake: Lake, batch_id: str, spec: dict) -> None:
    # The old report goes first: a crash in between leaves no report (rendered again from the
    # spec on demand), never an old report beside a new spec.
    html = _path(lake, batch_id, "html")
    if lake.fs.exists(html):
        lake.fs.rm(html)
    write_json_atomic(lake.fs, _path(lake, batch_id, "json"), spec)


def read_spec(lake: Lake, batch_id: str) -> dict | None:
    path = _path(lake, batch_id, "json")
    lake.fs.invalidate_cache(lake.root)
    return json.loads(lake.fs.cat_file(path)) if lake.fs.exists(path) else None


def rendered_or_render(lake: Lake, batch_id: str) -> str | None:
    """The batch's report HTML, rendering and keeping it first if it is not there yet."""
    html = lake.read_report(DRIFT, batch_id)
    if html is not None:
        return html
    spec = read_spec(lake, batch_id)
    if spec is None:
        return None
    html = render(lake, batch_id, spec)
    lake.write_report(DRIFT, batch_id, html)
    return html


def render(lake: Lake, batch_id: str, spec: dict) -> str:
    """Rebuild the comparison the spec describes and render it with Evidently."""
    from fraud_assets.modeling.champion_snapshot import read_version
    from fraud_assets.monitoring.drift import drift_report
    from fraud_assets.monitoring.reference import Reference, ReferenceReader

    current = lake.read_batch(FEATURES, batch_id)
    reference = ReferenceReader(lake).rows(Reference.from_dict(spec["reference"]))
    scorer = None
    if spec.get("model"):
        snapshot = read_version(lake, spec["model"]["name"], int(spec["model"]["version"]))
        scorer = snapshot.scorer() if snapshot is not None else None
    return drift_report(
        reference,
        current,
        columns=spec["columns"],
        share_threshold=spec["share_threshold"],
        sample_rows=spec["sample_rows"],
        seed=spec["seed"],
        scorer=scorer,
    ).html
