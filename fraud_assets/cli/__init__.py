"""The `fraud` command (assembled in `fraud_assets.cli.app`; `fraud = fraud_assets.cli:app`)."""

from fraud_assets.cli.app import app

__all__ = ["app"]
