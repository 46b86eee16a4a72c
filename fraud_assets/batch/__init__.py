"""Batch processing without Dagster: pipeline steps, ranged runs, table schemas, requests."""
