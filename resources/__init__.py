"""Dagster resources of the platform, and the one place that picks them per environment."""
