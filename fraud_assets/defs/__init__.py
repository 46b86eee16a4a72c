"""Dagster assets, checks and jobs: thin wrappers over the domain modules."""
