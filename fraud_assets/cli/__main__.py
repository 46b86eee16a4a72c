"""`python -m fraud_assets.cli`: the `fraud` command."""

from fraud_assets.cli import app

app()
