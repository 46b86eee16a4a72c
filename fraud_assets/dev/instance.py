"""The Dagster instance settings the platform relies on, written to $DAGSTER_HOME/dagster.yaml.

Batch runs read the look-back history earlier batches wrote, so two batch runs must not overlap:
the ingest step declares the pool `fraud_batches`, and these settings make the run queue hold a
run while another run of the same pool is in flight (pools at run granularity, limit 1). Runs
then start in the order they were queued, which is time order for a landing burst or a backfill.
Dagster stores a pool's limit only once its queue meets the pool, after choosing what to start, so
`prepare_instance` stores the pools' limits up front (fraud_assets/defs/pools.py).
The run queue is looked at every second instead of every five, and runs dequeued together are
launched side by side. A deployment adds its storage
(e.g. Postgres) to the same file.

    python -m fraud_assets.dev.instance "$DAGSTER_HOME"  # dagster.yaml if absent, pool limits
"""

from __future__ import annotations

import sys
from pathlib import Path

INSTANCE_YAML = """\
# Written by fraud_assets/dev/instance.py: the settings the fraud platform relies on.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1  # a landed batch should not wait 5 s in the queue
    # Launching a run starts a process and waits for it (seconds on a busy machine): in threads,
    # a backfill's run is not launched only after the publish run dequeued beside it.
    dequeue_use_threads: true
    dequeue_num_workers: 4
concurrency:
  pools:
    # One batch run at a time (pool `fraud_batches`, one training at a time `fraud_training`):
    # a queued run waits while another holds its pool, and runs start in queue order.
    granularity: run
    default_limit: 1
"""


_POSTGRES_DB = """\
    postgres_db:
      hostname: {host}
      port: {port}
      username: {user}
      db_name: {db}
      # dagster-postgres writes psycopg2's parameter style; SQLAlchemy 2.1 would pick psycopg 3
      # for a plain postgresql:// URL, on which its NOTIFY statements fail.
      scheme: postgresql+psycopg2
      password:
        env: DAGSTER_PG_PASSWORD  # a secret: from the environment, never in this file
"""

# Runs, events and schedules in PostgreSQL (dagster-postgres), as in a deployment. The three
# storages are named one by one so that the event log can be the pooled one
# (fraud_assets/dev/pooled_postgres.py): a batch run logs ten events per batch.
POSTGRES_STORAGE = (
    "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
    "  config:\n"
    + _POSTGRES_DB
    + "event_log_storage:\n  module: fraud_assets.dev.pooled_postgres\n"
    "  class: PooledPostgresEventLogStorage\n  config:\n"
    + _POSTGRES_DB
    + "schedule_storage:\n  module: dagster_postgres.schedule_storage\n"
    "  class: PostgresScheduleStorage\n  config:\n" + _POSTGRES_DB
)

_PLAIN_POSTGRES_STORAGE = "storage:\n  postgres:\n" + _POSTGRES_DB


def instance_yaml(postgres: dict[str, str | int] | None = None, pooled: bool = True) -> str:
    """The settings; with `postgres` (host, port, user, db), Dagster's storage in PostgreSQL.

    `pooled=False` names dagster-postgres's own event log (for checkouts without the pooled one).
    """
    if postgres is None:
        return INSTANCE_YAML
    storage = POSTGRES_STORAGE if pooled else _PLAIN_POSTGRES_STORAGE
    return INSTANCE_YAML + storage.format(**postgres)


def ensure_instance_config(home: str | Path, postgres: dict | None = None) -> Path:
    """Write dagster.yaml into `home` unless one is there (an operator's file is kept)."""
    path = Path(home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(instance_yaml(postgres))
    return path


def prepare_instance(home: str | Path, postgres: dict | None = None) -> Path:
    """dagster.yaml as `ensure_instance_config` writes it, and every pool's limit stored, so the
    first runs queued on this instance already wait for each other."""
    import dagster as dg

    from fraud_assets.defs.pools import ensure_pool_limits

    path = ensure_instance_config(home, postgres)
    with dg.DagsterInstance.from_config(str(path.parent)) as instance:
        ensure_pool_limits(instance)
    return path


if __name__ == "__main__":
    print(prepare_instance(sys.argv[1] if len(sys.argv) > 1 else "."))
