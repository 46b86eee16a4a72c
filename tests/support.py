"""Helpers the tests share: small simulation sizes, resources for the code location, hand-made
rows, free ports. Fixtures live in conftest.py; tests import helpers from here, never from a
conftest."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import numpy as np
import polars as pl

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


FEATURE_LAKE_START = dt.date(2024, 3, 1)
FEATURE_LAKE_DAYS = 42  # SMALL_TRAINING needs 35


def months_of_cards_and_frauds(days: int, first: int, seed: int) -> list[tuple]:
    """Few cards and terminals, amounts that jump, frauds here and there; terminal 0 is
    compromised from 36 days before `first` on (every transaction a fraud), and the cards paid
    20 times more before that, so the oldest frauds of its run have small 30-day ratios that
    only the history before them explains."""
    rng = np.random.default_rng(seed)
    n = days * 40
    times = np.sort(rng.integers(0, days * 86_400, n))
    terminals = rng.integers(0, 6, n)
    scale = np.where(times < first - 37 * 86_400, 20.0, 1.0)
    amounts = np.round(rng.exponential(30.0, n) * scale + 0.01, 2)
    frauds = (rng.random(n) < 0.1) | ((terminals == 0) & (times >= first - 36 * 86_400))
    return [
        (i + 1, int(t), int(c), int(m), float(a), int(f))
        for i, (t, c, m, a, f) in enumerate(
            zip(times, rng.integers(0, 12, n), terminals, amounts, frauds, strict=True)
        )
    ]
