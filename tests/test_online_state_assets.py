"""The `online_feature_state` asset and `fraud_labels`, through the real `ingest_batch` job in
process: a ranged run publishes every batch into real Redis (once, whatever the re-runs), the
consistency check passes for the newest batch, and labels from the service's log reach the
lake table and the published state.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import dagster as dg
import pytest
import redis

from fraud_assets.definitions import build_definitions
from fraud_assets.defs.online_state import (
    CONSISTENCY,
    LABELS,
    ONLINE_STATE,
    online_state_request,
)
from fraud_assets.dev.inprocess import RANGE_END_TAG, RANGE_START_TAG, publish_after
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.modeling.champion_snapshot import write_champion
from fraud_assets.online_state.publish import LABELS as LABEL_TABLE
from fraud_assets.online_state.publish import labels_table, state_rows
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.online_features import RedisFeatureStore
from resources.online import OnlineStore
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster

DAYS = 4
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> str:
    made = f"fraud-asset-test:{uuid.uuid4().hex}:"
    yield made
    RedisFeatureStore(redis.Redis.from_url(REDIS_URL), prefix=made).clear()


def run_range(
    defs: dg.Definitions, instance: dg.DagsterInstance, batches: list[str], job: str
) -> dg.ExecuteInProcessResult:
    tags = {RANGE_START_TAG: batches[0], RANGE_END_TAG: batches[-1]}
    return defs.resolve_job_def(job).execute_in_process(
        tags=tags, instance=instance, raise_on_error=False
    )


def ingest_then_publish(defs, instance, batches):  # noqa: ANN001, ANN201
    """What the daemon does: the ingest run, then the publish run its sensor requests."""
    ingest = run_range(defs, instance, batches, "ingest_batch")
    assert ingest.success
    request = online_state_request(dict(ingest.dagster_run.tags), ingest.run_id)
    assert request is not None and request.run_key == f"online-state:{ingest.run_id}"
    assert request.tags[RANGE_START_TAG] == batches[0]
    return run_range(defs, instance, batches, "online_state")


def test_the_sensor_requests_the_same_partition_or_range():
    single = online_state_request({"dagster/partition": "2024-03-01"}, "r1")
    assert single.partition_key == "2024-03-01" and single.run_key == "online-state:r1"
    assert online_state_request({}, "r2") is None
    defs = build_definitions(platform_resources(Path("/tmp/l"), Path("/tmp/d")))
    assert defs.resolve_sensor_def("online_state_sensor") is not None


def test_a_ranged_run_publishes_the_state_once_and_checks_consistency(
    landing: Path, tmp_path: Path, prefix: str
):
    summary = write_days(landing, days=DAYS)
    batches = list(summary.batches)
    data = tmp_path / "data"
    online = OnlineStore(redis_url=REDIS_URL, prefix=prefix, label_log_dir=str(data / "labels"))
    defs = build_definitions(platform_resources(landing, data, online_store=online))
    write_champion(Lake(*filesystem_for(str(data / "lake"))), None, "fraud-detector")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", batches)
        result = ingest_then_publish(defs, instance, batches)
        assert result.success
        again = run_range(defs, instance, batches, "online_state")  # counted once
        assert again.success

        lake = Lake(*filesystem_for(str(data / "lake")))
        rows = state_rows(lake, batches, online.origin)  # times from the service's origin
        store = RedisFeatureStore(redis.Redis.from_url(REDIS_URL), prefix=prefix)
        assert store.newest_batch() == batches[-1]
        assert store.redis.hlen(f"{prefix}tx:versions") == rows.height
        assert store.clock() == rows["tx_time_seconds"].max()

        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ONLINE_STATE), limit=20
        ).records
        assert {r.partition_key for r in records} == set(batches)
        assert records[0].asset_materialization.metadata["new_to_store"].value == 0
        checks = [e for e in result.get_asset_check_evaluations() if e.check_name == CONSISTENCY]
        (check,) = checks
        assert check.passed and check.metadata["batch"].value == batches[-1]
        assert check.metadata["match_rate"].value == 1.0
        assert check.metadata["rows_compared"].value > 100


def test_service_labels_become_the_fraud_labels_table_and_reach_the_state(
    landing: Path, tmp_path: Path, prefix: str
):
    summary = write_days(landing, days=2)
    batches = list(summary.batches)
    data = tmp_path / "data"
    online = OnlineStore(redis_url=REDIS_URL, prefix=prefix, label_log_dir=str(data / "labels"))
    defs = build_definitions(platform_resources(landing, data, online_store=online))
    lake = Lake(*filesystem_for(str(data / "lake")))
    write_champion(lake, None, "fraud-detector")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", batches)
        ingest = run_range(defs, instance, batches, "ingest_batch")
        assert ingest.success
        assert publish_after(defs, instance, [ingest.run_id]) == []  # as the sensor would
        assert publish_after(defs, instance, [ingest.run_id]) == []  # its run key: once only
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ONLINE_STATE), limit=10
        ).records
        assert sorted(r.partition_key for r in records) == batches

        clean = lake.read_by_date(CLEAN, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
        genuine = clean.filter(clean["tx_fraud"] == 0).row(0, named=True)
        log = LabelLog(data / "labels")
        for fraud in (False, True):  # a correction: the newest label wins
            log.append(
                {
                    "transaction_id": genuine["transaction_id"],
                    "customer_id": genuine["customer_id"],
                    "terminal_id": genuine["terminal_id"],
                    "tx_time_seconds": genuine["tx_time_seconds"],
                    "tx_datetime": genuine["tx_datetime"].isoformat(),
                    "fraud": fraud,
                    "labelled_at": dt.datetime.now(dt.UTC).isoformat(),
                    "source": "api",
                }
            )
        labelled = dg.materialize([defs.get_assets_def(LABELS)], resources=defs.resources)
        assert labelled.success
        table = labels_table(lake)
        assert table is not None and table.height == 1 and table["fraud"].to_list() == [True]
        assert LABEL_TABLE == "fraud_labels"

        rows = state_rows(lake, batches)
        relabelled = rows.filter(rows["transaction_id"] == genuine["transaction_id"])
        assert relabelled["tx_fraud"].to_list() == [1]


def test_service_labels_reach_the_batch_features_and_the_consistency_check_agrees(tmp_path):
    """fraud_labels feed the batch terminal risk too, so online and batch still agree."""
    import polars as pl

    from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.features.polars_engine import compute_features
    from fraud_assets.features.spec import LABEL_DELAY_DAYS
    from fraud_assets.online_state.consistency import check_batch
    from fraud_assets.privacy import Pseudonymizer
    from tests.support import SMALL

    summary = write_days(tmp_path / "landing", days=LABEL_DELAY_DAYS + 3, seed=4)
    lake = Lake(*filesystem_for(str(tmp_path / "lake")))
    config = CleaningConfig(origin_date=SMALL["start_date"])
    batches = list(summary.batches)
    for batch in batches:
        clean_into_lake(
            lake, tmp_path / "landing" / f"{batch}.txt", batch, Pseudonymizer(b"k"), config
        )
    first_day = lake.read_batch(CLEAN, batches[0])
    genuine = first_day.filter(pl.col("tx_fraud") == 0).head(40)
    labels = genuine.select(
        "transaction_id",
        "customer_id",
        "terminal_id",
        "tx_time_seconds",
        "tx_datetime",
        fraud=pl.lit(True),
        labelled_at=pl.lit(dt.datetime.now(dt.UTC)),
        source=pl.lit("api"),
    )
    lake.write_by_date(LABEL_TABLE, "service", labels)
    for batch in batches:
        features_into_lake(lake, batch)

    features = lake.read_batch("features", batches[0])
    relabelled = features.filter(pl.col("transaction_id").is_in(genuine["transaction_id"]))
    assert relabelled["tx_fraud"].to_list() == [1] * 40  # the training label follows
    newest = lake.read_batch("features", batches[-1])
    everything = lake.read_by_date(CLEAN, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    plain = compute_features(everything).filter(pl.col("batch_id") == batches[-1])
    joined = newest.join(plain, on="transaction_id", suffix="_files_only")
    # The relabelled frauds of day 0 raise the 30-day terminal risk of the newest day.
    assert (joined["terminal_risk_30d"] > joined["terminal_risk_30d_files_only"]).any()
    assert (joined["terminal_risk_30d"] >= joined["terminal_risk_30d_files_only"]).all()
    result = check_batch(lake, batches[-1])
    assert result.rows > 100 and result.match_rate == 1.0, result.worst_columns
