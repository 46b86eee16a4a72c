from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.simulation import SimulationParams
from fraud_assets.simulation.writer import SimulationSummary, write_simulation

SMALL = dict(customers=300, terminals=400, start_date=dt.date(2024, 3, 1))
# A training window tests can fill quickly: 14 + 7 validation + 7 review + 7 label delay = 35 days.
SMALL_TRAINING = dict(window_days=14, validation_days=7, review_days=7, iterations=150)


def platform_resources(landing: Path, data: Path, **overrides: object) -> dict[str, object]:
    """Every resource the code location needs, all below `data`, as the dev environment does."""
    from resources.models import ModelStore, ModelTraining
    from resources.online import OnlineStore
    from resources.processing import FeatureEngine, PseudonymKey
    from resources.storage import LakeStore, LandingZone

    resources: dict[str, object] = {
        "landing_zone": LandingZone(url=str(landing)),
        "lake": LakeStore(url=str(data / "lake")),
        "pseudonym_key": PseudonymKey(key="test-key"),
        "feature_engine": FeatureEngine(),
        "models": ModelStore(
            tracking_uri=f"sqlite:///{data / 'mlflow' / 'mlflow.db'}",
            artifact_location=str(data / "mlflow" / "artifacts"),
        ),
        "model_training": ModelTraining(**SMALL_TRAINING),
        "online_store": OnlineStore(label_log_dir=str(data / "label_log")),
    }
    return {**resources, **overrides}


HAND_ORIGIN = dt.datetime(2024, 1, 1)  # a Monday; the origin of hand-made rows


def hand_rows(rows: list[tuple[int, int, int, int, float, int]]) -> pl.DataFrame:
    """rows: (id, seconds since HAND_ORIGIN, customer, terminal, amount, fraud) -> clean-like."""
    return pl.DataFrame(
        rows,
        schema=[
            "transaction_id",
            "tx_time_seconds",
            "customer_id",
            "terminal_id",
            "tx_amount",
            "tx_fraud",
        ],
        orient="row",
    ).with_columns(
        tx_datetime=pl.lit(HAND_ORIGIN) + pl.duration(seconds=pl.col("tx_time_seconds")),
        tx_fraud=pl.col("tx_fraud").cast(pl.Int8),
    )


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


FEATURE_LAKE_START = dt.date(2024, 3, 1)
FEATURE_LAKE_DAYS = 42  # SMALL_TRAINING needs 35


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
