"""The drift report asset, its data-quality check, the report endpoint and drift → retraining."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.definitions import build_definitions
from fraud_assets.defs.ingest import ingest_batches
from fraud_assets.defs.keys import DRIFT
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.monitoring.report_server import create_app
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.simulation import SimulationParams
from fraud_assets.simulation.params import DriftScenario
from fraud_assets.simulation.writer import write_simulation
from tests.support import platform_resources

pytestmark = pytest.mark.dagster

START = dt.date(2024, 3, 1)
STABLE, DRIFTED = "2024-04-07", "2024-04-11"  # days 37 and 41; the drift starts on day 39


@pytest.fixture(scope="module")
def drift_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """42 days whose amounts triple and volume doubles from day 39 on, cleaned and featurised."""
    root = tmp_path_factory.mktemp("drift")
    params = SimulationParams(
        customers=1000,
        terminals=2000,
        days=42,
        start_date=START,
        seed=7,
        drift=DriftScenario(start_day=39, amount_factor=3.0, tx_per_day_factor=2.0),
    )
    summary = write_simulation(params, *filesystem_for(str(root / "landing")))
    lake = Lake(*filesystem_for(str(root / "lake")))
    for batch in summary.batches:
        source = root / "landing" / f"{batch}.txt"
        result = clean_into_lake(
            lake, source, batch, Pseudonymizer(b"k"), CleaningConfig(origin_date=START)
        )
        features_into_lake(lake, batch, batch_clean=result.clean)
    return root


@pytest.fixture(scope="module")
def reports(drift_data: Path) -> dict[str, dict]:
    """Materialize the drift report of a stable and of a drifted batch; their metadata."""
    resources = platform_resources(drift_data / "landing", drift_data)  # lake: drift_data/lake
    out = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", [STABLE, DRIFTED])
        for batch in (STABLE, DRIFTED):
            result = dg.materialize(
                [ingest_batches],
                selection=[DRIFT],
                partition_key=batch,
                resources=resources,
                instance=instance,
            )
            assert result.success
            check = result.get_asset_check_evaluations()[0]
            (materialization,) = result.asset_materializations_for_node("ingest_batches")
            assert materialization.asset_key == DRIFT and materialization.partition == batch
            out[batch] = {
                "meta": {k: v.value for k, v in materialization.metadata.items()},
                "check": check,
            }
    return out


def test_a_stable_batch_is_not_drifted(reports):
    meta = reports[STABLE]["meta"]
    assert meta["verdict"] == "not drifted" and meta["drift_share"] < 0.5
    assert "the 28 days before the batch" in meta["reference"]  # no champion yet


def test_a_batch_from_the_drift_scenario_is_drifted_on_the_features_that_moved(reports):
    meta = reports[DRIFTED]["meta"]
    assert meta["verdict"] == "drifted" and meta["drift_share"] >= 0.5
    drifted = meta["drifted_columns"].split(", ")
    assert {"tx_amount", "customer_avg_amount_1d", "customer_nb_tx_1d"} <= set(drifted)
    assert "tx_during_night" not in drifted  # the time of day did not move
    rows = {r.data["column"]: r.data for r in meta["drift_table"].records}  # per-feature rows
    assert rows["tx_amount"]["drifted"] == "yes" and rows["tx_during_night"]["drifted"] == "no"
    assert meta["drift_summary"].startswith(f"Drifted columns: {len(drifted)} of {len(rows)}")
    assert meta["report"].endswith(f"/reports/drift/{DRIFTED}.html")


def test_the_quality_check_warns_and_never_blocks(reports):
    for batch in (STABLE, DRIFTED):
        check = reports[batch]["check"]
        assert check.check_name == "data_quality"
        assert check.severity == dg.AssetCheckSeverity.WARN
    assert reports[STABLE]["check"].passed
    # Counts are always shown, per column: tripled amounts land above the reference's range.
    summary = reports[DRIFTED]["check"].metadata["summary"].value
    counts = {r.data["column"]: r.data for r in summary.records}
    assert {"tx_amount", "terminal_id"} <= set(counts)


def test_the_report_link_serves_the_full_html_report(reports, drift_data):
    lake = Lake(*filesystem_for(str(drift_data / "lake")))
    client = TestClient(create_app(lake))
    assert lake.read_report("drift", DRIFTED) is None  # batch runs do not render the HTML
    page = client.get(f"/reports/drift/{DRIFTED}.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert len(page.text) > 10_000 and "<html" in page.text.lower()
    assert "tx_amount" in page.text and "customer_avg_amount_1d" in page.text
    assert lake.read_report("drift", DRIFTED) == page.text  # rendered once, then kept
    assert client.get("/reports/drift/1999-01-01.html").status_code == 404
    assert client.get("/reports/drift/..%2F..%2Fetc.html").status_code == 404
    assert DRIFTED in client.get("/").text


def test_a_drifted_batch_triggers_retraining_once_with_the_reason_on_the_run(
    feature_lake, tmp_path
):
    resources = platform_resources(feature_lake / "landing", tmp_path)
    resources["lake"] = type(resources["lake"])(url=str(feature_lake / "lake"))
    defs = build_definitions(resources)
    sensor = defs.resolve_sensor_def("retraining_sensor")

    def tick(instance, cursor):  # noqa: ANN001, ANN202
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
        ) as context:
            return sensor.evaluate_tick(context)

    def drift(instance, batch, share):  # noqa: ANN001, ANN202
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "drift_report", partition=batch, metadata={"drift_share": share}
            )
        )

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", ["2024-04-10", "2024-04-11"])
        drift(instance, "2024-04-10", 0.2)  # below the threshold: no retraining
        calm = tick(instance, json.dumps({"features": 0, "drift": 0}))
        assert not calm.run_requests

        drift(instance, "2024-04-11", 0.7)
        fired = tick(instance, calm.cursor)
        assert len(fired.run_requests) == 1
        request = fired.run_requests[0]
        assert request.run_key == "drift:2024-04-11"
        assert "drift in batch 2024-04-11: 70% of columns drifted" in request.tags["fraud/trigger"]
        assert not tick(instance, fired.cursor).run_requests  # once, not on every tick
