"""Model evaluation domain: metrics, operating thresholds and champion–challenger tests."""
