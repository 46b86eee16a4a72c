"""The Spark engine on a real standalone cluster (a master and two workers on loopback) gives the
default engine's lake, whole tables compared: every defect class, a batch spanning many dates,
ties inside one second, cross-batch duplicate ids; and a failed commit loses nothing.

The cluster is started and stopped here; the session comes from the Dagster resource
(`resources.spark.SparkFeatureEngine`) with the cluster's URL as its master.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.batch.local import find_batches
from fraud_assets.batch.ranges import RangeConfig, Step, ingest_range
from fraud_assets.cleaning.terminal_registry import parse_registry
from fraud_assets.defs.keys import BATCH_ASSETS, CLEAN, FEATURES, QUARANTINE
from fraud_assets.dev.spark_cluster import StandaloneCluster
from fraud_assets.lake import STAGES, TABLES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import HEADER_LINE, BatchMarker
from tests.support import platform_resources, write_days

pytestmark = [pytest.mark.spark, pytest.mark.dagster]

KEY = b"test-key"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def engine(cluster: StandaloneCluster):  # noqa: ANN201 - a SparkFeatureEngine
    """The Dagster resource, pointed at the cluster; its session is stopped after the module."""
    from pyspark.sql import SparkSession

    from resources.spark import SparkFeatureEngine, spark_resource

    active = SparkSession.getActiveSession()
    if active is not None:  # another module's local session: ours must be the cluster's
        active.stop()
    resource = SparkFeatureEngine(pyspark=spark_resource(cluster.url, cluster.session_config()))
    try:
        yield resource
    finally:
        resource.spark_session().stop()


@pytest.fixture(scope="module")
def spark(engine):  # noqa: ANN001, ANN201
    session = engine.spark_session()
    assert session.sparkContext.master == engine.pyspark.spark_config["spark.master"]
    assert session.sparkContext.master.startswith("spark://127.0.0.1:")
    return session


def lake_at(path: Path) -> Lake:
    return Lake(*filesystem_for(str(path)))


def assert_same_lake(left: Lake, right: Lake) -> None:
    """Every table, whole: same rows in the same order, same schema."""
    for table in TABLES:
        a, b = left.read_table(table), right.read_table(table)
        assert a.schema == b.schema, table
        assert a.height == b.height, (table, a.height, b.height)
        assert a.equals(b), f"{table}: tables differ"
    for stage in STAGES:
        assert set(left.commits(stage)) == set(right.commits(stage)), stage


def no_stray_files(root: Path, lake: Lake) -> None:
    """Data files on disk are exactly those the commits name (staging folders are gone)."""
    named = {str(root / e.path) for s in STAGES for c in lake.commits(s).values() for e in c.files}
    on_disk = {str(p) for p in root.rglob("*.parquet*") if p.is_file()}
    assert on_disk == named


# -- the Dagster job on the cluster -----------------------------------------------------------


def _materializations(instance: dg.DagsterInstance, batches: list[str]) -> dict:
    out = {}
    for batch in batches:
        for key in BATCH_ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[batch]), limit=1
            ).records
            if records:
                metadata = records[0].asset_materialization.metadata
                out[(batch, key.to_user_string())] = {k: v.value for k, v in metadata.items()}
    return out


def _run_all(landing: Path, data: Path, **resources: object) -> dict:
    from fraud_assets.definitions import build_definitions
    from fraud_assets.dev.inprocess import RANGE_END_TAG, RANGE_START_TAG
    from fraud_assets.modeling.champion_snapshot import write_champion

    write_champion(lake_at(data / "lake"), None, "fraud-detector")
    batches = sorted(p.stem for p in landing.glob("*.txt"))
    defs = build_definitions(platform_resources(landing, data, **resources))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", batches)
        job = defs.resolve_job_def("ingest_batch")
        tags = {RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]}
        result = job.execute_in_process(tags=tags, instance=instance, raise_on_error=False)
        assert result.success
        return _materializations(instance, batches)


def test_the_dagster_job_on_the_cluster_gives_the_default_engines_lake(
    engine, spark, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_days(landing, days=6, dirty=0.03, seed=5)
    default = _run_all(landing, tmp_path / "default")
    on_spark = _run_all(landing, tmp_path / "spark", feature_engine=engine)

    assert_same_lake(lake_at(tmp_path / "default" / "lake"), lake_at(tmp_path / "spark" / "lake"))
    no_stray_files(tmp_path / "spark" / "lake", lake_at(tmp_path / "spark" / "lake"))
    assert set(default) == set(on_spark)
    for (batch, asset), metadata in default.items():
        spark_metadata = on_spark[(batch, asset)]
        if asset in (
            CLEAN.to_user_string(),
            QUARANTINE.to_user_string(),
            FEATURES.to_user_string(),
        ):
            # The UI shows which engine made each materialization.
            assert metadata["fraud/engine"] == "polars", (batch, asset)
            assert spark_metadata["fraud/engine"] == "spark", (batch, asset)
        same = {k: v for k, v in metadata.items() if k not in ("fraud/engine", "engine")}
        other = {k: v for k, v in spark_metadata.items() if k not in ("fraud/engine", "engine")}
        assert repr(same) == repr(other), (batch, asset)
    reasons = {r for (_, a), m in default.items() if a == "quarantined_transactions" for r in m}
    assert reasons  # the batches had quarantined rows to compare


# -- a hand-made landing zone: many dates, ties, every defect, a re-sent id -----------------------


def _marker(path: Path, origin: str, first: str | None = None, last: str | None = None) -> None:
    data = path.read_bytes()
    rows = data.count(b"\n") - 1 + (not data.endswith(b"\n"))
    marker = BatchMarker(
        path.stem, rows, len(data), hashlib.sha256(data).hexdigest(), origin, first, last
    )
    path.with_suffix(".done").write_text(marker.to_json())


def _body(path: Path) -> bytes:
    return path.read_bytes().split(b"\n", 1)[1]


@pytest.fixture(scope="module")
def hand_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2024-03-01..2024-03-20 as one monthly-style batch (its marker declares the period),
    then two daily batches; the last one with ties, an exact copy, a re-sent id of the month,
    CRLF and non-UTF-8 lines, hour 24, and the simulator's defects throughout."""
    days = tmp_path_factory.mktemp("days")
    write_days(days, days=22, dirty=0.04, seed=9)
    landing = tmp_path_factory.mktemp("hand") / "landing"
    landing.mkdir()
    shutil.copy(days / "terminals.csv", landing / "terminals.csv")
    origin = "2024-03-01"
    files = sorted(days.glob("*.txt"))
    month = landing / "2024-03-20.txt"
    month.write_bytes(HEADER_LINE + b"".join(_body(p) for p in files[:20]))
    _marker(month, origin, "2024-03-01", "2024-03-20")
    shutil.copy(files[20], landing / files[20].name)
    _marker(landing / files[20].name, origin)
    last = landing / files[21].name
    shutil.copy(files[21], last)
    # Lines of this day under ids the month committed: `duplicate_id` (an old line re-sent as it
    # was would be `outside_period` first).
    month_ids = [line.split(b",", 1)[0] for line in _body(files[3]).split(b"\n")[:20]]
    today = _body(files[21]).split(b"\n")[:20]
    resent = b"\n".join(
        i + b"," + line.split(b",", 1)[1] for i, line in zip(month_ids, today, strict=True)
    )
    ties = [  # a new customer, one terminal, one second; file order is not id order
        b"99000003,2024-03-22 10:00:00,123456,11,30.00,1850400,21,0,0",
        b"99000001,2024-03-22 10:00:00,123456,11,10.00,1850400,21,0,0",
        b"99000002,2024-03-22 10:00:00,123456,11,20.00,1850400,21,1,1",
        b"99000002,2024-03-22 10:00:00,123456,11,20.00,1850400,21,1,1",  # an exact copy
        b"99000004,2024-03-22 24:00:00,8,11,5.00,1872000,21,0,0",  # hour 24
        b"99000005,2024-03-22 11:00:00,9,12,7.50,1854000,21,0,0\r",  # CRLF
        b"99000006,2024-03-22 11:00:00,9,\xff\xfe,7.50,1854000,21,0,0",  # not UTF-8
        b"99000007,2024-03-22 11:00:01,9,999999,7.50,1854001,21,0,0",  # unknown terminal
    ]
    last.write_bytes(last.read_bytes() + resent + b"\n" + b"\n".join(ties) + b"\n")
    _marker(last, origin)
    return landing


def _ingest(landing: Path, lake_path: Path, config: RangeConfig) -> list:
    source = find_batches([str(landing)])
    terminals = parse_registry((landing / "terminals.csv").read_bytes(), "terminals.csv")
    config = RangeConfig(**{**config.__dict__, "registry": terminals})
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    return ingest_range(
        list(source.paths), steps, source, lake_at(lake_path), Pseudonymizer(KEY), config,
        row_estimate=source.row_estimate,
    )  # fmt: skip


def test_many_dates_ties_and_every_defect_class_match_the_default_engine(
    spark, hand_landing: Path, tmp_path: Path
) -> None:
    default = _ingest(hand_landing, tmp_path / "default", RangeConfig())
    on_spark = _ingest(hand_landing, tmp_path / "spark", RangeConfig(engine="spark", spark=spark))

    assert [o.ok for o in default] == [o.ok for o in on_spark] == [True, True, True]
    assert_same_lake(lake_at(tmp_path / "default"), lake_at(tmp_path / "spark"))
    no_stray_files(tmp_path / "spark", lake_at(tmp_path / "spark"))
    for a, b in zip(default, on_spark, strict=True):
        assert (a.clean.raw_rows, a.clean.clean_rows, a.clean.quarantined) == (
            b.clean.raw_rows, b.clean.clean_rows, b.clean.quarantined,
        )  # fmt: skip
        assert (a.clean.duplicates, a.clean.origin, a.clean.period) == (
            b.clean.duplicates, b.clean.origin, b.clean.period,
        )  # fmt: skip
        assert a.clean.by_reason == b.clean.by_reason
        assert a.clean.repaired == b.clean.repaired
        assert b.clean.conserved and b.clean.engine == "spark"
        assert a.clean.clean_schema == b.clean.clean_schema == []
        assert (a.features.rows, a.features.fraud_share) == (
            b.features.rows,
            b.features.fraud_share,
        )
        assert a.features.schema == b.features.schema == []
    month, _, last = on_spark
    # The first two were cleaned by byte ranges (batch/spark_ranges.py), which record their id
    # range; the last one's re-sent ids that the month did not commit (their lines were
    # quarantined there) are valid rows far below its other ids: not in id order, so its ranges
    # were discarded and the row plan cleaned it (no id range recorded).
    spark_lake = lake_at(tmp_path / "spark")
    ranges = [
        spark_lake.commit_of("clean", o.batch_id).meta.get("transaction_id_range") for o in on_spark
    ]
    assert ranges[0] and ranges[1] and ranges[2] is None
    assert month.clean.period == "2024-03-01..2024-03-20"
    assert len(lake_at(tmp_path / "spark").dates("clean")) >= 20
    # Every defect class reached the comparison.
    reasons = set(month.clean.by_reason) | set(last.clean.by_reason)
    assert {"duplicate_id", "unknown_terminal", "unparseable", "err_terminal", "empty_terminal",
            "bad_customer", "missing_customer", "missing_amount", "nonpositive_amount",
            } <= reasons  # fmt: skip
    # With a registry, unknown terminals are `unknown_terminal`; without one, out of range:
    # the Dagster test above runs without a registry.
    assert last.clean.duplicates >= 1 and last.clean.repaired["hour_24"] >= 1
    ties = (
        lake_at(tmp_path / "spark")
        .read_table("features")
        .filter(pl.col("transaction_id").is_between(99000001, 99000003))
        .sort("transaction_id")
    )
    assert ties["customer_nb_tx_1d"].to_list() == [1, 2, 3]  # the id breaks ties in a second
    assert ties["customer_avg_amount_1d"].to_list() == [10.0, 15.0, 20.0]


def test_a_landing_zone_on_s3_is_read_by_the_executors_with_its_own_endpoint(
    spark, hand_landing: Path, s3_bucket: str, s3_server: str, tmp_path: Path
) -> None:
    """The batches on an S3-protocol server (moto, on loopback) whose endpoint only the landing
    zone's settings name: the workers read their byte ranges from it and give the lake the
    default engine makes from the same files on disk. (The first two batches: the third needs
    the row plan, whose Spark text source reads S3 through Hadoop's s3a connector, a jar
    pyspark does not ship.)"""
    from tests.test_storage import s3_landing

    zone = s3_landing(s3_bucket, s3_server)
    fs, root = zone.filesystem()
    batches = sorted(p.stem for p in hand_landing.glob("*.txt"))[:2]
    names = ["terminals.csv"] + [f"{b}{end}" for b in batches for end in (".txt", ".done")]
    local = tmp_path / "landing"
    local.mkdir()
    for name in names:
        fs.put_file(str(hand_landing / name), f"{root}/{name}")
        shutil.copy(hand_landing / name, local / name)
    assert [b.batch_id for b in zone.listing().complete] == batches

    default = _ingest(local, tmp_path / "default", RangeConfig())
    terminals = parse_registry((local / "terminals.csv").read_bytes(), "terminals.csv")
    config = RangeConfig(engine="spark", spark=spark, registry=terminals)
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    lake = lake_at(tmp_path / "spark")
    on_spark = ingest_range(batches, steps, zone, lake, Pseudonymizer(KEY), config)

    assert [o.ok for o in default] == [o.ok for o in on_spark] == [True, True]
    assert_same_lake(lake_at(tmp_path / "default"), lake)
    # Byte ranges, not the row plan: each commit records the id range it holds.
    assert all(lake.commit_of("clean", b).meta.get("transaction_id_range") for b in batches)


def test_a_batch_whose_ids_are_out_of_order_across_ranges_is_cleaned_by_the_row_plan(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days in reverse order and a copy of the first line at the end: the byte ranges' ids
    overlap, so the ranges cannot be cleaned apart; the result is still the default engine's."""
    days = tmp_path / "days"
    write_days(days, days=3, dirty=0.04, seed=11)
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(days / "terminals.csv", landing / "terminals.csv")
    bodies = [_body(p) for p in sorted(days.glob("*.txt"))]
    batch = landing / sorted(days.glob("*.txt"))[0].name  # named after its first day
    first_line = bodies[0].split(b"\n", 1)[0]
    batch.write_bytes(HEADER_LINE + b"".join(reversed(bodies)) + first_line + b"\n")
    _marker(batch, "2024-03-01", "2024-03-01", "2024-03-03")  # three days, one batch
    from fraud_assets.batch import spark_ranges

    tried, by_ranges = [], spark_ranges.clean_by_ranges

    def recorded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        tried.append((args[-1], by_ranges(*args, **kwargs)))  # (cores, result)
        return tried[-1][1]

    monkeypatch.setattr(spark_ranges, "clean_by_ranges", recorded)
    default = _ingest(landing, tmp_path / "default", RangeConfig())
    on_spark = _ingest(landing, tmp_path / "spark", RangeConfig(engine="spark", spark=spark))
    assert len(tried) == 1 and tried[0][0] >= 2 and tried[0][1] is None, tried

    assert [o.ok for o in default] == [o.ok for o in on_spark] == [True]
    assert_same_lake(lake_at(tmp_path / "default"), lake_at(tmp_path / "spark"))
    no_stray_files(tmp_path / "spark", lake_at(tmp_path / "spark"))
    (a,), (b,) = default, on_spark
    assert (a.clean.raw_rows, a.clean.clean_rows, a.clean.duplicates) == (
        b.clean.raw_rows, b.clean.clean_rows, b.clean.duplicates,
    )  # fmt: skip
    assert b.clean.duplicates >= 1
    assert a.clean.by_reason == b.clean.by_reason
    commit = lake_at(tmp_path / "spark").commit_of("clean", b.batch_id)
    assert "transaction_id_range" not in commit.meta  # the row plan made it


def test_a_failed_spark_commit_leaves_the_committed_batch_intact(
    spark, hand_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fraud_assets.batch import spark_clean as spark_engine
    from fraud_assets.batch import spark_ranges

    lake_path = tmp_path / "lake"
    source = find_batches([str(hand_landing)])
    first = sorted(source.paths)[:1]
    config = RangeConfig(engine="spark", spark=spark)
    (outcome,) = ingest_range(
        first, {Step.CLEAN}, source, lake_at(lake_path), Pseudonymizer(KEY), config
    )
    assert outcome.ok
    lake = lake_at(lake_path)
    before = {t: lake.read_table(t) for t in TABLES}
    commit = lake.commit_of("clean", first[0])

    def adopt_then_fail(writer, table, files, by_date):  # noqa: ANN001
        writer.adopt(table, files[0].path, files[0].rows, files[0].values.get("tx_date"), 0)
        raise OSError("disk full")

    monkeypatch.setattr(spark_engine, "adopt_all", adopt_then_fail)
    monkeypatch.setattr(spark_ranges, "adopt_all", adopt_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest_range(first, {Step.CLEAN}, source, lake, Pseudonymizer(KEY), config)
    assert lake.commit_of("clean", first[0]) == commit
    for table, frame in before.items():
        assert lake.read_table(table).equals(frame), table
