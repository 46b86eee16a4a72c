"""Spark session settings shared by the Spark engines and the Dagster resource."""
