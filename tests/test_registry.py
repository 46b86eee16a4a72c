"""The MLflow 3 registry: challenger logging, champion promotion and rollback, loading by alias.

The same flow runs against an embedded SQLite store and against the machine's PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
import sqlalchemy

from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.modeling.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    ModelRegistry,
    NoPreviousChampionError,
    RegistryError,
)
from fraud_assets.modeling.training import TrainedModel, TrainingConfig, score, train_model

pytestmark = pytest.mark.slow

START = dt.date(2024, 3, 1)
DAYS = 12
# A small window so 12 synthetic days suffice: train 7, validation 3, label gap 2.
CONFIG = TrainingConfig(window_days=7, validation_days=3, delay_days=2, iterations=30)
END = START + dt.timedelta(days=DAYS - 1)
POSTGRES = "127.0.0.1:5432"


def synthetic_features(rows_per_day: int = 250, seed: int = 0) -> pl.DataFrame:
    """A feature table with the lake's columns whose fraud depends on two features: the registry
    does not care how realistic the model is, only that it is a real trained one."""
    rng = np.random.default_rng(seed)
    n = DAYS * rows_per_day
    x = rng.normal(size=(n, len(FEATURE_COLUMNS)))
    fraud = rng.random(n) < 1 / (1 + np.exp(-(-3.0 + 2.0 * x[:, 0] + 1.5 * x[:, 5])))
    seconds = np.repeat(np.arange(DAYS) * 86_400, rows_per_day) + rng.integers(0, 86_400, n)
    return pl.DataFrame(
        {
            "transaction_id": np.arange(n),
            "seconds": seconds,
            "customer_id": rng.integers(0, 300, n),
            "terminal_id": rng.integers(0, 500, n),
            "tx_amount": rng.uniform(1, 200, n).round(2),
            "tx_fraud": fraud.astype(np.int8),
            **{name: x[:, i] for i, name in enumerate(FEATURE_COLUMNS)},
        }
    ).with_columns(
        tx_datetime=pl.lit(dt.datetime.combine(START, dt.time()))
        + pl.duration(seconds=pl.col("seconds"))
    )


@pytest.fixture(scope="module", autouse=True)
def _no_files_in_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """MLflow falls back to ./mlflow.db and ./mlruns when a URI escapes: make that visible here
    rather than in the repository."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def models(features: pl.DataFrame) -> tuple[TrainedModel, TrainedModel]:
    """Two different models (different seeds), so a load can tell which one it got."""
    first = train_model(features, END, CONFIG)
    second = train_model(features, END, dataclasses.replace(CONFIG, seed=1))
    assert not np.array_equal(score(first, features), score(second, features))
    return first, second


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating its schema takes seconds); each test gets its
    own registered model in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def registry(sqlite_uri: str) -> ModelRegistry:
    return ModelRegistry(sqlite_uri, model_name=f"fraud-{uuid.uuid4().hex[:8]}")


def test_logging_registers_a_challenger_version_that_carries_its_threshold(registry, models):
    trained = models[0]
    before = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.is_tracking_uri_set()
    tags = {"dagster_run_id": "run-123", "partitions": "2024-03-01..2024-03-12"}
    info = registry.log_challenger(trained, tags)

    assert info.version == 1 and info.aliases == [CHALLENGER]
    assert info.threshold == trained.threshold.threshold  # exact: stored with repr()
    assert info.threshold_policy == "max_recall_at_fpr"
    assert info.tags["dagster_run_id"] == "run-123"
    assert registry.challenger() == info and registry.champion() is None

    run = registry.client.get_run(info.run_id)
    assert run.data.tags["partitions"] == "2024-03-01..2024-03-12"
    assert run.data.params["window_train_start"] == "2024-03-01"
    assert run.data.params["window_valid_end"] == "2024-03-10"
    assert run.data.params["feature_names"] == ",".join(FEATURE_COLUMNS)
    assert run.data.params["imbalance"] == "none"
    assert run.data.metrics["valid_auc_roc"] == pytest.approx(trained.validation_metrics["auc_roc"])
    features_file = registry.client.download_artifacts(info.run_id, "features.json")
    assert json.loads(Path(features_file).read_text())["feature_names"] == FEATURE_COLUMNS
    # The registry's URI does not leak into MLflow's process-wide state.
    assert (os.environ.get("MLFLOW_TRACKING_URI"), mlflow.is_tracking_uri_set()) == before

    second = registry.log_challenger(models[1], {"dagster_run_id": "run-124"})
    assert second.version == 2 and registry.challenger().version == 2
    assert registry.version(1).aliases == []


def test_promotion_makes_the_version_champion_and_records_why(registry, models):
    version = registry.log_challenger(models[0], {}).version
    registry.promote(version, "bootstrap: AP +0.04, 95% CI [0.01, 0.07]")

    champion = registry.champion()
    assert champion.version == version and CHAMPION in champion.aliases
    assert champion.tags["promotion_reason"] == "bootstrap: AP +0.04, 95% CI [0.01, 0.07]"
    assert "promoted_at" in champion.tags
    assert registry.history() == [] and registry.by_alias(PREVIOUS_CHAMPION) is None
    registry.tag(version, {"review_decision": "promoted", "review_resamples": 1000})
    assert registry.version(version).tags["review_resamples"] == "1000"


def test_rollback_after_a_second_promotion_restores_the_first_champion(registry, models):
    v1 = registry.log_challenger(models[0], {}).version
    v2 = registry.log_challenger(models[1], {}).version
    registry.promote(v1, "first model")
    registry.promote(v2, "better")
    assert registry.champion().version == v2
    assert registry.by_alias(PREVIOUS_CHAMPION).version == v1 and registry.history() == [v1]

    assert registry.rollback("AP dropped in production") == v1
    assert registry.champion().version == v1
    assert registry.history() == [] and registry.by_alias(PREVIOUS_CHAMPION) is None
    assert registry.version(v2).tags["rollback_reason"] == "AP dropped in production"
    assert registry.version(v1).tags["restore_reason"] == "AP dropped in production"
    with pytest.raises(NoPreviousChampionError):  # one step back only: v1 replaced nobody
        registry.rollback()


def test_rollback_without_an_earlier_champion_is_a_clear_error(registry, models):
    with pytest.raises(NoPreviousChampionError, match=r"no previous champion.*current.*none"):
        registry.rollback()
    version = registry.log_challenger(models[0], {}).version
    registry.promote(version, "first model")
    with pytest.raises(NoPreviousChampionError, match=r"no previous champion.*current.*v1"):
        registry.rollback()
    assert registry.champion().version == version
    with pytest.raises(RegistryError, match="no version 7"):
        registry.promote(7, "typo")


def test_loading_by_alias_gives_the_same_model_and_threshold(registry, models, features):
    first, second = models
    v1 = registry.log_challenger(first, {}).version
    registry.promote(v1, "first model")
    registry.log_challenger(second, {})

    champion, threshold = registry.load(CHAMPION)
    assert np.array_equal(score(champion, features), score(first, features))
    assert threshold == first.threshold.threshold
    challenger, threshold = registry.load(CHALLENGER)
    assert np.array_equal(score(challenger, features), score(second, features))
    assert threshold == second.threshold.threshold
    by_number, _ = registry.load(v1)
    assert np.array_equal(score(by_number, features), score(first, features))
    with pytest.raises(RegistryError, match="no version with alias 'staging'"):
        registry.load("staging")


def test_a_database_store_needs_an_artifact_location():
    with pytest.raises(ValueError, match="pass artifact_location"):
        ModelRegistry("postgresql://postgres@127.0.0.1:5432/mlflow")


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A throw-away database on the machine's PostgreSQL (trust auth), dropped afterwards."""
    scheme = "postgresql+psycopg"  # psycopg 3, a project dependency: never skipped
    name = f"mlflow_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(
        f"{scheme}://postgres@{POSTGRES}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{scheme}://postgres@{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:  # FORCE: MLflow keeps its pooled connections open
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_whole_flow_on_a_postgresql_backend_store(postgres_uri, tmp_path, models, features):
    first, second = models
    registry = ModelRegistry(postgres_uri, artifact_location=str(tmp_path / "artifacts"))

    v1 = registry.log_challenger(first, {"dagster_run_id": "pg-1"})
    assert (v1.version, v1.aliases, v1.threshold) == (1, [CHALLENGER], first.threshold.threshold)
    v2 = registry.log_challenger(second, {"dagster_run_id": "pg-2"})
    registry.promote(v1.version, "first model")
    registry.promote(v2.version, "better")
    assert registry.champion().version == 2
    assert registry.rollback("regression") == 1
    assert registry.champion().version == 1

    model, threshold = registry.load(CHAMPION)
    assert np.array_equal(score(model, features), score(first, features))
    assert threshold == first.threshold.threshold
    assert list((tmp_path / "artifacts").rglob("model.cb"))  # artifacts in the chosen folder
    with pytest.raises(NoPreviousChampionError):
        registry.rollback()
