"""Real-time scoring: online features that match the batch definitions. Never imports Dagster."""
