"""Fixtures shared by the tests, and the fast lane (`pytest --fast`, `make test-fast`).

Helpers the tests import live in tests/support.py.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.simulation import SimulationParams
from fraud_assets.simulation.writer import write_simulation
from tests.support import (
    FEATURE_LAKE_DAYS,
    FEATURE_LAKE_START,
    S3_CREDENTIALS,
    free_port,
)

# Markers of the slow groups (registered in pyproject.toml); the fast lane runs everything else.
SLOW_GROUPS = frozenset({"browser", "spark", "outage", "daemon", "dagster", "slow"})
_FILE_MARKS = re.compile(r"^pytestmark\s*=\s*(\[.*?\]|.*?)$", re.MULTILINE | re.DOTALL)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        default=False,
        help="the fast lane: leave out tests marked " + ", ".join(sorted(SLOW_GROUPS)),
    )


def _file_groups(path: Path) -> set[str]:
    """Slow groups a test file's module-level `pytestmark` names, read without importing it."""
    found = _FILE_MARKS.search(path.read_text())
    return set(re.findall(r"pytest\.mark\.(\w+)", found.group(1))) & SLOW_GROUPS if found else set()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast lane, a file (or folder of files) marked slow as a whole is not even imported:
    collecting it would cost its imports (Dagster, Spark, MLflow…) for nothing."""
    if not config.getoption("fast"):
        return None
    files = (
        sorted(collection_path.glob("test_*.py"))
        if collection_path.is_dir()
        else [collection_path]
        if collection_path.name.startswith("test_") and collection_path.suffix == ".py"
        else []
    )
    if files and all(_file_groups(f) for f in files):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("fast"):
        return
    slow = [i for i in items if any(i.get_closest_marker(g) for g in SLOW_GROUPS)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if i not in set(slow)]


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3-protocol server, as its own process on loopback."""
    port = free_port()
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


@pytest.fixture(scope="session")
def feature_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """42 simulated days cleaned and featurised into `<root>/lake` (read-only for tests).

    1 000 customers and 2 000 terminals: ~2 k transactions and ~3 % fraud a day, enough frauds
    in every week for training, validation and review slices.
    """
    from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.lake import Lake
    from fraud_assets.privacy import Pseudonymizer

    root = tmp_path_factory.mktemp("feature-lake")
    params = SimulationParams(
        customers=1000,
        terminals=2000,
        days=FEATURE_LAKE_DAYS,
        start_date=FEATURE_LAKE_START,
        seed=7,
    )
    summary = write_simulation(params, *filesystem_for(str(root / "landing")))
    lake = Lake(*filesystem_for(str(root / "lake")))
    config = CleaningConfig(origin_date=FEATURE_LAKE_START)
    for batch in summary.batches:
        result = clean_into_lake(
            lake, root / "landing" / f"{batch}.txt", batch, Pseudonymizer(b"test-key"), config
        )
        features_into_lake(lake, batch, batch_clean=result.clean)
    return root
