"""A small web endpoint for the lake's HTML reports: browsers refuse `file://` links from the
Dagster UI, so the drift report link in an asset's metadata points here instead.

Reports are read through fsspec, so the same endpoint serves a local lake, S3 or HDFS. A drift
report that batch runs did not render is rendered on its first request (Evidently, seconds) and
kept in the lake for the next.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from fraud_assets.lake import Lake
from fraud_assets.monitoring.drift_reports import rendered_or_render
from fraud_assets.settings import REPORTS_PORT

DEFAULT_PORT = REPORTS_PORT
_BATCH = re.compile(r"^[A-Za-z0-9_.-]+$")  # batch ids are file stems: no slashes, no `..`
KINDS = ("drift",)


def create_app(lake: Lake) -> FastAPI:
    app = FastAPI(title="Fraud platform reports", docs_url=None, redoc_url=None)

    @app.get("/reports/{kind}/{batch_id}.html", response_class=HTMLResponse)
    def report(kind: str, batch_id: str) -> HTMLResponse:
        if kind not in KINDS or not _BATCH.match(batch_id) or ".." in batch_id:
            raise HTTPException(404, f"no such report: {kind}/{batch_id}")
        html = rendered_or_render(lake, batch_id)
        if html is None:
            raise HTTPException(404, f"no {kind} report for batch {batch_id} yet")
        return HTMLResponse(html)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        items = []
        for kind in KINDS:
            found = lake.fs.glob(lake.path("reports", kind, "*.json")) + lake.fs.glob(
                lake.path("reports", kind, "*.html")
            )
            batches = sorted({p.rsplit("/", 1)[1].rsplit(".", 1)[0] for p in found})
            for batch in batches:
                items.append(f'<li><a href="/reports/{kind}/{batch}.html">{kind} {batch}</a></li>')
        body = "".join(items) or "<li>No reports yet.</li>"
        return HTMLResponse(f"<html><body><h1>Reports</h1><ul>{body}</ul></body></html>")

    return app
