"""Every FRAUD_* environment variable, declared once (pydantic-settings), with its type and default.

No Dagster here: the resources (`resources/environments.py`), the `fraud` command and the
services all read the same declarations, so a default (the data folder, the MLflow store, the
time origin) is worked out in one place. docs/settings.md lists every variable.

Each group is its own settings class, read when it is called for (tests and the demo change the
environment between calls); `batch_settings()` and `validation_settings()` are read once per
process because every batch of a run must see the same bounds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_ORIGIN = dt.date(2018, 4, 1)  # the simulator's reference start
_FRAUD = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")


class Environment(StrEnum):
    """FRAUD_ENV: which resources the code location builds."""

    DEV = "dev"  # embedded defaults below FRAUD_DATA_DIR
    PROD = "prod"  # landing zone, pseudonym key and MLflow store must be given


class FeatureEngineName(StrEnum):
    POLARS = "polars"
    SPARK = "spark"


def _blank_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# -- where the platform keeps its data ---------------------------------------------------------


class DataDirSettings(BaseSettings):
    """The root every embedded default lives below (landing zone, lake, MLflow, label log)."""

    model_config = _FRAUD

    data_dir: Path = Field(
        Path("data"), description="FRAUD_DATA_DIR: root of the embedded defaults"
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()


class PlatformSettings(DataDirSettings):
    """Locations and choices shared by the code location, the CLI and the services."""

    env: Environment = Field(Environment.DEV, description="FRAUD_ENV: dev or prod")
    landing_url: str | None = Field(
        None, description="FRAUD_LANDING_URL: landing zone (folder, s3://…, hdfs://…)"
    )
    lake_url: str | None = Field(None, description="FRAUD_LAKE_URL: the lake (same forms)")
    s3_endpoint_url: str | None = Field(
        None, description="FRAUD_S3_ENDPOINT_URL: S3-compatible endpoint in prod (MinIO, Ceph…)"
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="FRAUD_MLFLOW_TRACKING_URI: MLflow store (may hold a password: a secret)",
    )
    mlflow_artifacts: str | None = Field(
        None, description="FRAUD_MLFLOW_ARTIFACTS: artifact location of that store"
    )
    training_window_days: int | None = Field(
        None, ge=1, description="FRAUD_TRAINING_WINDOW_DAYS: shorter training window (the demo)"
    )
    feature_engine: FeatureEngineName = Field(
        FeatureEngineName.POLARS, description="FRAUD_FEATURE_ENGINE: polars or spark"
    )
    spark_master: str = Field(
        "local[2]", description="FRAUD_SPARK_MASTER: Spark master for the spark engine"
    )
    spark_driver_memory: str = Field(
        "1g", description="FRAUD_SPARK_DRIVER_MEMORY: the Spark driver's heap (executors work)"
    )
    redis_url: str | None = Field(
        None, description="FRAUD_REDIS_URL: online feature store (may hold a password)"
    )
    redis_prefix: str = Field("fraud:", description="FRAUD_REDIS_PREFIX: key prefix in Redis")
    label_log_dir: Path | None = Field(
        None, description="FRAUD_LABEL_LOG_DIR: the scoring service's durable label log"
    )
    origin_date: dt.date = Field(
        DEFAULT_ORIGIN, description="FRAUD_ORIGIN_DATE: online times count from its midnight"
    )
    reports_url: str | None = Field(
        None, description="FRAUD_REPORTS_URL: where browsers reach `fraud reports`"
    )

    @field_validator(
        "landing_url",
        "lake_url",
        "s3_endpoint_url",
        "mlflow_tracking_uri",
        "mlflow_artifacts",
        "redis_url",
        "label_log_dir",
        "reports_url",
        mode="before",
    )
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_unset(value)

    @property
    def landing(self) -> str:
        return self.landing_url or str(self.data_dir / "landing")

    @property
    def lake(self) -> str:
        return self.lake_url or str(self.data_dir / "lake")

    @property
    def tracking_uri(self) -> str:
        """The MLflow store: FRAUD_MLFLOW_TRACKING_URI, else a SQLite file below the data dir."""
        return self.mlflow_tracking_uri or default_tracking_uri(self.data_dir)

    @property
    def artifact_location(self) -> str | None:
        if self.mlflow_tracking_uri:
            return self.mlflow_artifacts
        return str(self.data_dir / "mlflow" / "artifacts")

    @property
    def label_log(self) -> Path:
        return self.label_log_dir or self.data_dir / "label_log"

    @property
    def reports(self) -> str:
        return (self.reports_url or f"http://127.0.0.1:{REPORTS_PORT}").rstrip("/")

    def missing_for_prod(self, secrets: SecretSettings) -> list[str]:
        """What FRAUD_ENV=prod needs and the environment does not give, with why."""
        missing = []
        if not self.landing_url:
            missing.append("FRAUD_LANDING_URL (s3://…, hdfs://…, or a path)")
        if secrets.pseudonym_key is None:
            missing.append("FRAUD_PSEUDONYM_KEY, the pseudonymisation secret")
        if not self.mlflow_tracking_uri:
            missing.append("FRAUD_MLFLOW_TRACKING_URI (an MLflow server or database)")
        return missing


REPORTS_PORT = 8765


def default_tracking_uri(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"


def ensure_store_folder(tracking_uri: str) -> None:
    """An embedded SQLite store (the default) needs its folder before MLflow opens it."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def platform_settings() -> PlatformSettings:
    return PlatformSettings()


def data_dir() -> Path:
    return DataDirSettings().data_dir


def landing_url() -> str:
    return platform_settings().landing


def lake_url() -> str:
    return platform_settings().lake


# -- secrets that domain code reads itself -----------------------------------------------------


class SecretSettings(BaseSettings):
    """Keys the domain code needs in plain form. Resources reference them as `dg.EnvVar`, so the
    Dagster UI shows their names, never their values (docs/secrets.md)."""

    model_config = _FRAUD

    pseudonym_key: SecretStr | None = Field(
        None, description="FRAUD_PSEUDONYM_KEY: HMAC key of customer and terminal pseudonyms"
    )
    quarantine_key: SecretStr | None = Field(
        None, description="FRAUD_QUARANTINE_KEY: Fernet key of the lake's restricted zone"
    )

    @field_validator("pseudonym_key", "quarantine_key", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_unset(value)


def secret_settings() -> SecretSettings:
    return SecretSettings()


class TestHookSettings(BaseSettings):
    """Switches that only the crash tests set."""

    model_config = _FRAUD

    lake_crash_at: str | None = Field(
        None,
        description="FRAUD_LAKE_CRASH_AT: [stage:]point where a lake commit kills its process",
    )


# -- batch runs --------------------------------------------------------------------------------


class BatchSettings(BaseSettings):
    """How batch runs are cut: a backfill or a landing burst becomes ranged runs of this size."""

    model_config = _FRAUD

    batches_per_run: int = Field(
        # Each run costs a process start (≈ 5 s) and a trip through the run queue, and batch runs
        # go one at a time anyway; memory is bounded by the ≈ 12 M-row chunks a range is cut into.
        default=200,
        ge=1,
        description="FRAUD_BATCHES_PER_RUN: most batches one ingest run (a backfill run, or a "
        "run the landing sensor requests for a burst) processes",
    )
    landing_sensor_interval_seconds: int = Field(
        default=15,
        ge=1,
        description="FRAUD_LANDING_SENSOR_INTERVAL_SECONDS: how often the landing zone is listed",
    )


@lru_cache(maxsize=1)
def batch_settings() -> BatchSettings:
    return BatchSettings()


class ValidationSettings(BaseSettings):
    """Bounds of the data contract that cleaning holds every row to (docs/raw-batches.md)."""

    model_config = _FRAUD

    max_amount: float = Field(
        default=10_000_000.0,
        gt=0,
        description="FRAUD_MAX_AMOUNT: rows with a larger amount are quarantined as "
        "amount_above_maximum (amounts below it are never clipped)",
    )
    max_terminal_id: int = Field(
        default=999_999,
        ge=0,
        description="FRAUD_MAX_TERMINAL_ID: without a terminal registry, larger terminal ids are "
        "quarantined as terminal_out_of_range; with one, the registry decides",
    )


@lru_cache(maxsize=1)
def validation_settings() -> ValidationSettings:
    return ValidationSettings()


# -- the scoring service and the stream worker -------------------------------------------------


def _id_list(value: Any) -> Any:
    """Accept "1,2, 3", "[1,2,3]", a list, or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _data_dir() -> Path:
    return DataDirSettings().data_dir


class ServiceSettings(BaseSettings):
    """The scoring service's and the stream worker's settings (docs/settings.md, docs/serving.md).

    FRAUD_PSEUDONYM_KEY is read by `fraud_assets.privacy` (SecretSettings) when the scorer is
    built; the defaults that depend on FRAUD_DATA_DIR are PlatformSettings', so the service and
    the code location find the same MLflow store, lake and label log.
    """

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", frozen=True)

    mlflow_tracking_uri: str = Field(default_factory=lambda: default_tracking_uri(_data_dir()))
    mlflow_artifacts: str | None = None
    model_name: str = "fraud-detector"
    model_alias: str = "champion"
    model_poll_seconds: float = Field(30.0, gt=0)

    redis_url: str | None = None
    redis_prefix: str = "fraud:"
    redis_timeout_seconds: float = Field(0.5, gt=0)

    api_token: str | None = None
    feedback_token: str | None = None
    investigator_token: str | None = None  # the investigators' desk (/desk)
    desk_budget: int = Field(100, ge=1, le=100_000)  # cards the daily queue shows (k)
    origin_date: dt.date = DEFAULT_ORIGIN
    max_clock_skew_seconds: int = Field(86_400, ge=0)
    max_body_bytes: int = Field(2_000_000, ge=1_000)
    lake_url: str | None = None
    warm_start: bool = True
    label_log_dir: Path = Field(default_factory=lambda: _data_dir() / "label_log")

    rule_blocked_customers: Annotated[frozenset[int], NoDecode] = frozenset()
    rule_blocked_terminals: Annotated[frozenset[int], NoDecode] = frozenset()
    rule_max_amount: float | None = Field(None, gt=0)

    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    opentelemetry: bool = False

    @field_validator("rule_blocked_customers", "rule_blocked_terminals", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _id_list(value)

    @field_validator("redis_url", "lake_url", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_unset(value)

    @field_validator("api_token", "feedback_token", "investigator_token", mode="before")
    @classmethod
    def _no_blank_token(cls, value: Any) -> Any:
        # A blank token once switched authentication off without a word: refuse it instead.
        if isinstance(value, str) and (not value.strip() or value != value.strip()):
            raise ValueError(
                "is set but blank or padded with spaces; give a real token, or unset the "
                "variable to run without authentication (development only)"
            )
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("FRAUD_TLS_CERTFILE and FRAUD_TLS_KEYFILE must be set together")
        if self.feedback_token is not None and self.feedback_token == self.api_token:
            raise ValueError("FRAUD_FEEDBACK_TOKEN must differ from FRAUD_API_TOKEN (two roles)")
        if self.investigator_token is not None and self.investigator_token in (
            self.api_token,
            self.feedback_token,
        ):
            raise ValueError("FRAUD_INVESTIGATOR_TOKEN must differ from the other roles' tokens")
        return self

    @property
    def lake(self) -> str:
        return self.lake_url or str(_data_dir() / "lake")

    @property
    def origin(self) -> dt.datetime:
        """Midnight of the origin date: tx_time_seconds = (tx_datetime - origin) in seconds."""
        return dt.datetime.combine(self.origin_date, dt.time())

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_token or self.feedback_token)

    def warn_if_insecure(self) -> None:
        if not self.auth_enabled:
            log.warning(
                "FRAUD_API_TOKEN is not set: the scoring API accepts UNAUTHENTICATED requests. "
                "Set FRAUD_API_TOKEN (and TLS) before exposing this service."
            )
        if self.redis_url is None:
            log.warning(
                "FRAUD_REDIS_URL is not set: online features live in this process only "
                "(lost on restart, not shared between workers)."
            )


Settings = ServiceSettings

# Every settings class, for docs/settings.md and the test that keeps the two in step.
ALL_SETTINGS = (
    DataDirSettings,
    PlatformSettings,
    SecretSettings,
    BatchSettings,
    ValidationSettings,
    ServiceSettings,
    TestHookSettings,
)
