"""The `fraud` command, assembled from the command modules of this package."""

from __future__ import annotations

import typer

from fraud_assets.cli.batches import clean, features
from fraud_assets.cli.investigate import investigate
from fraud_assets.cli.lake import lake_app
from fraud_assets.cli.models import backtest, model_app
from fraud_assets.cli.platform import demo, reports
from fraud_assets.cli.simulate import simulate
from fraud_assets.serving.cli import serve
from fraud_assets.serving.stream_cli import stream

app = typer.Typer(
    help="Bank-card fraud platform: simulate transactions, ingest batches, run the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
for command in (simulate, clean, features, demo, reports):
    app.command()(command)
app.add_typer(model_app, name="model")
app.add_typer(lake_app, name="lake")
app.command()(backtest)
app.command("serve")(serve)
app.command("stream")(stream)
app.command("investigate")(investigate)


if __name__ == "__main__":
    app()
