"""Feature definitions and their engines (Polars in process, Spark at scale)."""
