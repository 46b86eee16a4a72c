"""The landing zone resource reads and lists local folders and S3 through the same interface."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from typer.testing import CliRunner

from fraud_assets.cli import app
from fraud_assets.defs.ingest import ingest_batches
from fraud_assets.defs.keys import RAW
from fraud_assets.rawdata.format import HEADER_LINE, BatchMarker
from resources.s3 import S3LandingZone
from resources.storage import LandingZone
from tests.support import platform_resources, write_days

pytestmark = pytest.mark.dagster


def s3_landing(bucket: str, endpoint: str) -> S3LandingZone:
    s3 = S3Resource(
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return S3LandingZone(url=f"{bucket}/landing", s3=s3)


def assert_lists_and_reads(zone: LandingZone, batches: list[str]) -> None:
    listing = zone.listing()
    assert [b.batch_id for b in listing.complete] == batches
    assert listing.incomplete == [] and listing.ignored == []
    for batch_id in batches:
        with zone.open_batch(batch_id) as f:
            content = f.read()
        assert content.startswith(HEADER_LINE)
        marker = BatchMarker.from_json(zone.marker(batch_id))
        assert marker is not None and marker.bytes == len(content)


def test_local_folder(landing: Path):
    summary = write_days(landing, days=2)
    (landing / "README.txt").write_text("not a batch")
    zone = LandingZone(url=str(landing))
    assert zone.listing().ignored == ["README.txt"]
    (landing / "README.txt").unlink()
    assert_lists_and_reads(zone, summary.batches)


def test_s3_through_the_s3_protocol_server(s3_bucket: str, s3_server: str):
    zone = s3_landing(s3_bucket, s3_server)
    fs, root = zone.filesystem()
    assert zone.listing().batches == []  # an empty prefix is an empty landing zone
    summary = write_days(zone.url, days=2, client_kwargs={"endpoint_url": s3_server})
    assert_lists_and_reads(zone, summary.batches)

    # A batch whose marker has not arrived yet is seen as incomplete, even on a cached filesystem.
    fs.pipe_file(f"{root}/2030-01-01.txt", HEADER_LINE)
    listing = zone.listing()
    assert [b.batch_id for b in listing.incomplete] == ["2030-01-01"]


def test_raw_asset_materializes_from_s3(s3_bucket: str, s3_server: str):
    zone = s3_landing(s3_bucket, s3_server)
    summary = write_days(zone.url, days=1, client_kwargs={"endpoint_url": s3_server})
    batch_id = summary.batches[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", [batch_id])
        result = dg.materialize(
            [ingest_batches],
            selection=[RAW],
            partition_key=batch_id,
            resources={
                **platform_resources(Path("/nonexistent"), Path("/nonexistent")),
                "landing_zone": zone,
            },
            instance=instance,
        )
    assert result.success
    metadata = result.asset_materializations_for_node("ingest_batches")[0].metadata
    assert metadata["dagster/row_count"].value == summary.rows_written
    assert metadata["file"].value == f"{zone.url}/{batch_id}.txt"


def test_cli_writes_to_s3(s3_bucket: str, s3_server: str):
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            f"{s3_bucket}/cli",
            "--customers",
            "50",
            "--terminals",
            "80",
            "--days",
            "2",
            "--s3-endpoint-url",
            s3_server,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 2 batches" in result.output
    zone = s3_landing(s3_bucket, s3_server).model_copy(update={"url": f"{s3_bucket}/cli"})
    assert len(zone.listing().complete) == 2
