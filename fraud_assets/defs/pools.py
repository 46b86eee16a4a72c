"""The concurrency pools the platform's steps declare, and making their limits known.

dagster.yaml (fraud_assets/dev/instance.py) gives every pool a default limit of one run, but
Dagster stores that limit for a pool only when its run queue first meets the pool, after it has
chosen what to start in that pass: on an instance that never ran a batch, a burst of queued batch
runs would start together. So the limits are stored before any run is queued: when the instance
is prepared (`dev/instance.py`) and at every tick of the landing sensor, which queues batch runs.
"""

from __future__ import annotations

import dagster as dg

BATCH_POOL = "fraud_batches"  # one batch run at a time keeps look-back history ahead of the batches
TRAINING_POOL = "fraud_training"  # one training or review at a time
ONLINE_STATE_POOL = "fraud_online_state"  # one publish at a time
POOLS = (BATCH_POOL, TRAINING_POOL, ONLINE_STATE_POOL)


def ensure_pool_limits(instance: dg.DagsterInstance) -> list[str]:
    """Store the default limit of every pool the instance does not know yet; the ones stored."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    missing = [pool for pool in POOLS if pool not in storage.get_concurrency_keys()]
    return [pool for pool in missing if storage.initialize_concurrency_limit_to_default(pool)]
