"""Spark Connect: the master URL `sc://…` makes the Dagster resource build a remote session, and
the pipeline run through Spark's own Connect server (on loopback, over a `local[2]` master) gives
the default engine's lake, whole tables compared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_assets.batch.local import find_batches
from fraud_assets.batch.ranges import RangeConfig, Step, ingest_range
from fraud_assets.cleaning.terminal_registry import parse_registry
from fraud_assets.dev.spark_cluster import SparkConnectServer
from fraud_assets.lake import STAGES, TABLES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from tests.support import write_days

pytestmark = [pytest.mark.spark]


@pytest.fixture(scope="module")
def connect_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A session from the Dagster resource with the Connect server's URL as its master."""
    from pyspark.sql import SparkSession

    from resources.spark import SparkFeatureEngine, spark_resource

    active = SparkSession.getActiveSession()
    if active is not None:  # another module's classic session: ours must be remote
        active.stop()
    server = SparkConnectServer(tmp_path_factory.mktemp("connect")).start()
    before = {k: os.environ.get(k) for k in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")}
    session = SparkFeatureEngine(pyspark=spark_resource(server.url)).spark_session()
    try:
        yield session
    finally:
        session.stop()
        server.stop()
        for key, value in before.items():  # later modules build classic sessions
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ingest(landing: Path, lake: Lake, config: RangeConfig) -> list:
    source = find_batches([str(landing)])
    terminals = parse_registry((landing / "terminals.csv").read_bytes(), "terminals.csv")
    config = RangeConfig(**{**config.__dict__, "registry": terminals})
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    return ingest_range(list(source.paths), steps, source, lake, Pseudonymizer(b"k"), config)


def test_the_pipeline_through_spark_connect_gives_the_default_engines_lake(
    connect_session, tmp_path: Path
) -> None:
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    assert isinstance(connect_session, RemoteSession)
    landing = tmp_path / "landing"
    write_days(landing, days=3, dirty=0.04, seed=5)
    default = Lake(*filesystem_for(str(tmp_path / "default")))
    remote = Lake(*filesystem_for(str(tmp_path / "connect")))
    a = _ingest(landing, default, RangeConfig())
    b = _ingest(landing, remote, RangeConfig(engine="spark", spark=connect_session))

    assert [o.ok for o in a] == [o.ok for o in b] == [True, True, True]
    assert all(o.clean.engine == "spark" for o in b)
    assert sum(o.clean.quarantined for o in b) > 0  # the defects reached the comparison
    for table in TABLES:
        left, right = default.read_table(table), remote.read_table(table)
        assert left.schema == right.schema and left.equals(right), table
    for stage in STAGES:
        assert set(default.commits(stage)) == set(remote.commits(stage)), stage
