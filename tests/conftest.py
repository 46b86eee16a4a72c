from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_assets.filesystems import filesystem_for
from fraud_assets.simulation import SimulationParams
from fraud_assets.simulation.writer import SimulationSummary, write_simulation

SMALL = dict(customers=300, terminals=400, start_date=dt.date(2024, 3, 1))


def write_days(
    url: str | Path, days: int = 2, dirty: float = 0.0, seed: int = 0, **storage
) -> SimulationSummary:
    params = SimulationParams(days=days, seed=seed, **SMALL)
    return write_simulation(params, *filesystem_for(str(url), **storage), dirty_rate=dirty)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3-protocol server, as its own process on loopback."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; returns its s3:// URL. Credentials are moto's dummies."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"landing-{uuid.uuid4().hex[:10]}"
    fs, _ = filesystem_for(
        f"s3://{name}", client_kwargs={"endpoint_url": s3_server}, **S3_CREDENTIALS
    )
    fs.mkdir(name)
    return f"s3://{name}"
