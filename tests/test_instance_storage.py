"""The instance settings the platform writes: Dagster's storage in PostgreSQL with a pooled
event log, so a run's events do not each open new connections (fraud_assets/dev/instance.py).

Runs against the local PostgreSQL server, in a database of its own.
"""

import os
import uuid

import dagster as dg
import psycopg
import pytest
import yaml

from fraud_assets.defs.pools import POOLS, ensure_pool_limits
from fraud_assets.dev.instance import ensure_instance_config, instance_yaml, prepare_instance

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def database():
    name = f"test_instance_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield {"host": "127.0.0.1", "port": 5432, "user": "postgres", "db": name}
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def backends(db: str) -> int:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        return c.execute(query, (db,)).fetchone()[0]


def connections_opened(db: str) -> int:
    """Backends started for this database so far (pg_stat_database counts sessions)."""
    with psycopg.connect(ADMIN, autocommit=True) as c:
        query = "SELECT sessions FROM pg_stat_database WHERE datname = %s"
        return c.execute(query, (db,)).fetchone()[0]


EVENTS = 200  # observations one run logs (a ranged batch run logs ~10 events per batch)


@dg.asset
def noisy(context: dg.AssetExecutionContext) -> None:
    for i in range(EVENTS):
        context.log_event(dg.AssetObservation("noisy", metadata={"i": i}))


def test_the_postgres_settings_keep_the_password_out_of_the_file(database):
    text = instance_yaml(database)
    config = yaml.safe_load(text)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = config[storage]["config"]["postgres_db"]
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
        assert db["db_name"] == database["db"]
    assert config["event_log_storage"]["class"] == "PooledPostgresEventLogStorage"


@pytest.mark.dagster  # a run on an instance in PostgreSQL
def test_a_run_stores_its_events_through_a_few_pooled_connections(database, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    (tmp_path / "dagster.yaml").write_text(instance_yaml(database))
    opened_before = connections_opened(database["db"])
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = dg.materialize([noisy], instance=instance)
        assert result.success
        records = instance.fetch_observations(dg.AssetKey("noisy"), limit=EVENTS + 1).records
        assert len(records) == EVENTS
        opened = connections_opened(database["db"]) - opened_before
    # Without the pool every event opens one or more connections (more than EVENTS in all);
    # pooled, the event log reuses a few and only the instance's start-up opens others.
    assert opened < EVENTS / 2, f"{opened} connections opened for one run"


def test_plain_settings_name_dagster_postgres_own_storage(database):
    config = yaml.safe_load(instance_yaml(database, pooled=False))
    assert set(config["storage"]) == {"postgres"}


def test_an_operators_file_is_kept(tmp_path):
    path = tmp_path / "dagster.yaml"
    path.write_text("telemetry:\n  enabled: true\n")
    ensure_instance_config(tmp_path, {"host": "h", "port": 1, "user": "u", "db": "d"})
    assert path.read_text() == "telemetry:\n  enabled: true\n"
    assert os.path.exists(path)


def test_the_run_queue_launches_runs_side_by_side_and_keeps_one_batch_run_at_a_time(
    tmp_path, monkeypatch
):
    (tmp_path / "dagster.yaml").write_text(instance_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        coordinator = instance.run_coordinator
        assert coordinator.dequeue_interval_seconds == 1
        assert coordinator.dequeue_use_threads and coordinator.dequeue_num_workers == 4
    config = yaml.safe_load(instance_yaml())
    assert config["concurrency"]["pools"] == {"granularity": "run", "default_limit": 1}


@dg.op(pool="fraud_batches")
def batch_step() -> None: ...


@dg.job
def two_batch_runs() -> None:
    batch_step()


def queued_run(instance: dg.DagsterInstance) -> str:
    """A batch run waiting in the queue, as a sensor or a backfill leaves it (a queued run names
    the code location it came from; this one names the test module)."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "two_batch_runs")
    run = instance.create_run_for_job(
        two_batch_runs, status=dg.DagsterRunStatus.QUEUED, remote_job_origin=origin
    )
    return run.run_id


def runs_the_queue_would_start(instance: dg.DagsterInstance) -> list[str]:
    """The run ids the run-queue daemon would launch in its next pass (its own decision)."""
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
    return [r.run_id for r in runs]


def test_on_a_fresh_instance_the_first_two_batch_runs_queued_together_do_not_start_together(
    tmp_path, monkeypatch
):
    """Dagster stores a pool's default limit only while dequeuing, after it chose what to start:
    on an instance that never ran a batch, a burst of batch runs would all start at once."""
    prepare_instance(tmp_path)  # as `make ui` and a deployment's set-up do
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        first, second = (queued_run(instance) for _ in range(2))
        assert runs_the_queue_would_start(instance) == [first]


def test_a_sensor_tick_stores_the_pool_limits_an_instance_lacks(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(instance_yaml())  # an instance never prepared
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert ensure_pool_limits(instance) == list(POOLS)
        assert ensure_pool_limits(instance) == []  # once stored, a tick costs one query
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert {pool: limits.get(pool) for pool in POOLS} == dict.fromkeys(POOLS, 1)
        first, second = (queued_run(instance) for _ in range(2))
        assert runs_the_queue_would_start(instance) == [first]
