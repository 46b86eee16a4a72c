"""`fraud demo` and `fraud reports`: the platform on one machine, and its report server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from fraud_assets.cli.console import console
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for


def demo(
    days: Annotated[
        int,
        typer.Option(
            min=36,
            help="Days of data to simulate (training needs 35; up to 7 more land a week later "
            "for the challenger).",
        ),
    ] = 42,
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 3_000,
    terminals: Annotated[int, typer.Option(min=1, help="Number of terminals.")] = 6_000,
) -> None:
    """The whole lifecycle on embedded defaults: simulate days into ./data/landing (the last 3
    drift on purpose), ingest each batch through the landing sensor, train and promote a
    champion, land the last week and review a challenger against it, measure the champion on
    labelled batches, replay the newest day through the scoring service, and print a summary."""
    from fraud_assets.cli.demo import run_demo  # Dagster is only imported when needed

    run_demo(console, days=days, customers=customers, terminals=terminals)


def reports(
    lake: Annotated[
        str | None, typer.Option(help="Lake URL or folder; default: FRAUD_LAKE_URL or data/lake.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; the UI links use FRAUD_REPORTS_URL.")] = 8765,
) -> None:
    """Serve the lake's HTML reports (Evidently drift reports) over HTTP, for the report links in
    the Dagster UI (browsers do not open file:// links from a web page)."""
    import uvicorn

    from fraud_assets.monitoring.report_server import create_app
    from fraud_assets.settings import lake_url

    url = lake or lake_url()
    console.print(Text(f"Reports of {url} on http://{host}:{port}/"))
    uvicorn.run(create_app(Lake(*filesystem_for(url))), host=host, port=port, log_level="warning")
