"""Where a batch's report is found: links for the UI, without the server's web stack.

A batch run writes these links into its metadata; importing FastAPI for that would cost a
fresh run process more than a second.
"""

from __future__ import annotations

from fraud_assets.settings import platform_settings


def reports_base_url() -> str:
    """Where people's browsers reach the report server (FRAUD_REPORTS_URL)."""
    return platform_settings().reports


def report_url(kind: str, batch_id: str) -> str:
    return f"{reports_base_url()}/reports/{kind}/{batch_id}.html"
