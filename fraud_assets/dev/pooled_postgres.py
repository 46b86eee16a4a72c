"""Dagster's PostgreSQL event log, holding its connections in a pool in every process.

dagster-postgres opens a new connection for every statement outside the webserver (SQLAlchemy's
NullPool), and storing one event takes four or five statements. A ranged batch run logs about
ten events per batch (materializations and check results), so a half-year backfill opened
~13,000 connections, each a new PostgreSQL backend: half of the run's wall time
(BENCHMARKS.md, "Orchestration"). The webserver avoids this by calling the storage's public
`optimize_for_webserver`, which swaps in a small pool; this class does the same wherever the
storage is loaded (run workers, daemon), without the webserver's statement timeout.

dagster.yaml names it under `event_log_storage` (fraud_assets/dev/instance.py writes that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_postgres import PostgresEventLogStorage

POOL_RECYCLE_S = 3600  # reconnect hourly: survives server-side idle timeouts
MAX_OVERFLOW = 8  # connections beyond the pooled one when threads write at once


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]):  # noqa: ANN206
        storage = super().from_config_value(inst_data, config_value)
        # statement_timeout 0: no limit; a run's writes must not be cut off as UI queries are.
        storage.optimize_for_webserver(
            statement_timeout=0, pool_recycle=POOL_RECYCLE_S, max_overflow=MAX_OVERFLOW
        )
        return storage
