"""Batch monitoring without orchestration: data drift (Evidently) and data quality against a
reference. Pure functions over Polars frames; the Dagster assets and checks call them."""
