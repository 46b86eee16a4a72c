"""Investigators in the loop, simulated: scores -> daily queue -> decisions -> labels ->
feedback features -> retraining (`loop.py`). No Dagster, no web: the batch engines, whose
parity with serving is tested."""
