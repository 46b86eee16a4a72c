"""Secrets stay secret: with FRAUD_ENV=prod, the pseudonymisation key and a password in the
tracking URI reach the resources through the environment, and appear nowhere the UI, the run
storage or the lake keep (issue 16: the key used to be plain resource config in the snapshot)."""

from __future__ import annotations

import secrets
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from fraud_assets.definitions import build_definitions
from fraud_assets.defs.keys import CLEAN, FEATURES, QUARANTINE, RAW
from fraud_assets.dev.inprocess import tick_sensor
from fraud_assets.privacy import Pseudonymizer
from tests.support import write_days

pytestmark = pytest.mark.dagster


@pytest.fixture
def prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    found = {
        "key": "pseudonym-key-" + secrets.token_hex(16),
        "password": "tracking-password-" + secrets.token_hex(8),
    }
    monkeypatch.setenv("FRAUD_ENV", "prod")
    monkeypatch.setenv("FRAUD_PSEUDONYM_KEY", found["key"])
    monkeypatch.setenv("FRAUD_LANDING_URL", str(tmp_path / "landing"))
    monkeypatch.setenv("FRAUD_LAKE_URL", str(tmp_path / "lake"))
    # Never contacted: the runs below do not reach the model registry.
    uri = f"http://fraud:{found['password']}@127.0.0.1:9/"
    monkeypatch.setenv("FRAUD_MLFLOW_TRACKING_URI", uri)
    return found


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and any(needle in p.read_bytes() for needle in needles)
    ]


def test_the_key_appears_in_no_snapshot_run_record_log_or_lake_file(prod, tmp_path, capfd):
    from resources.environments import build_resources

    key, password = prod["key"].encode(), prod["password"].encode()
    summary = write_days(tmp_path / "landing", days=2, dirty=0.01)
    defs = build_definitions(build_resources())

    # What the code location sends to the UI: resources name the variables, not their values.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert prod["key"] not in snapshot and prod["password"] not in snapshot
    assert "FRAUD_PSEUDONYM_KEY" in snapshot and "FRAUD_MLFLOW_TRACKING_URI" in snapshot

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        assert not tick_sensor(defs, instance, "terminal_registry_sensor").failed
        instance.add_dynamic_partitions("batches", summary.batches)
        job = defs.resolve_job_def("ingest_batch")
        for batch in summary.batches:
            run = job.execute_in_process(
                partition_key=batch,
                instance=instance,
                asset_selection=[RAW, CLEAN, QUARANTINE, FEATURES],
            )
            assert run.success
        records = instance.get_run_records()
        assert len(records) == 3
        for record in records:
            stored = serialize_value(record.dagster_run)
            logs = serialize_value(instance.all_logs(record.dagster_run.run_id))
            assert prod["key"] not in stored + logs and prod["password"] not in stored + logs

    # The key was used: terminals carry its pseudonyms.
    clean = pl.read_parquet(tmp_path / "lake" / "clean" / "**" / "*.parquet")
    pseudonyms = {Pseudonymizer(key).one("terminal", t) for t in range(400)}
    assert set(clean["terminal_id"].to_list()) <= pseudonyms
    # Run and event storage, compute logs, every lake file, and what the process printed.
    assert list(home.rglob("compute_logs/*.err")), "the runs' compute logs are searched too"
    assert files_containing(home, [key, password]) == []
    assert files_containing(tmp_path / "lake", [key, password]) == []
    out, err = capfd.readouterr()
    assert prod["key"] not in out + err and prod["password"] not in out + err


def test_s3_credentials_are_named_in_the_snapshot_never_given(prod, monkeypatch):
    from resources.environments import build_resources

    access, secret = "AKIA" + secrets.token_hex(8).upper(), "s3-secret-" + secrets.token_hex(16)
    monkeypatch.setenv("FRAUD_LANDING_URL", "s3://bank-landing/batches")
    monkeypatch.setenv("FRAUD_LAKE_URL", "s3://bank-lake/fraud")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    defs = build_definitions(build_resources())
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert access not in snapshot and secret not in snapshot
    assert "AWS_SECRET_ACCESS_KEY" in snapshot
    # Inside a run the resource resolves them: the filesystem gets the values.
    from resources.s3 import s3fs_options

    lake = dg.build_resources({"lake": defs.resources["lake"]})
    with lake as resolved:
        options = s3fs_options(resolved.lake.s3)
    assert (options["key"], options["secret"]) == (access, secret)
