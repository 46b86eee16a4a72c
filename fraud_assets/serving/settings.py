"""Scoring-service settings, read from FRAUD_* environment variables (pydantic-settings).

FRAUD_MLFLOW_TRACKING_URI   MLflow tracking/registry URI; default: the embedded SQLite store
                            `$FRAUD_DATA_DIR/mlflow/mlflow.db` (FRAUD_DATA_DIR default `data`),
                            the same default as the Dagster code location.
FRAUD_MLFLOW_ARTIFACTS      artifact location for that store (optional)
FRAUD_MODEL_NAME            registered model name (default `fraud-detector`)
FRAUD_MODEL_ALIAS           alias that is served (default `champion`)
FRAUD_MODEL_POLL_SECONDS    how often the alias is re-read; a new version is hot-swapped (30)
FRAUD_REDIS_URL             online feature store in Redis (e.g. redis://127.0.0.1:6379/0);
                            unset: an in-process store (one worker only, state lost on restart)
FRAUD_REDIS_PREFIX          key prefix of the online feature store (default `fraud:`)
FRAUD_REDIS_TIMEOUT_SECONDS socket timeout of Redis calls (default 0.5)
FRAUD_API_TOKEN             bearer token of the scoring role (/v1/score*, /v1/features); unset:
                            NO AUTHENTICATION (a loud warning at start-up; development only).
                            Set but blank: refused at start-up.
FRAUD_FEEDBACK_TOKEN        bearer token of the labelling role (/v1/feedback only; must differ
                            from FRAUD_API_TOKEN). Unset while FRAUD_API_TOKEN is set: labelling
                            is refused (403). Both unset: open (development only).
FRAUD_INVESTIGATOR_TOKEN    the investigators' desk (/desk): signs investigators in; unset: the
                            desk refuses every page (403). Must differ from the other tokens.
FRAUD_DESK_BUDGET           cards the daily queue shows (k, default 100)
FRAUD_MAX_CLOCK_SKEW_SECONDS  time guard: a transaction more than this after the newest one the
                            store holds (or after the wall clock) is refused (default 86400)
FRAUD_MAX_BODY_BYTES        request bodies above this are refused with 413 before being read
                            (default 2000000: a full batch of 1000 transactions is ~150 kB)
FRAUD_LAKE_URL              the lake the in-process store warm-starts from (default: the data
                            dir's lake, $FRAUD_DATA_DIR/lake)
FRAUD_WARM_START            load the online state from the lake at start (in-process store only;
                            default true; a missing lake just starts empty)
FRAUD_LABEL_LOG_DIR         where /v1/feedback appends its durable label log (JSON lines;
                            default $FRAUD_DATA_DIR/label_log); the `fraud_labels` asset reads it
FRAUD_ORIGIN_DATE           the data's time origin: tx_time_seconds counts from its midnight
                            (default 2018-04-01, the simulator's reference start)
FRAUD_PSEUDONYM_KEY         the keyed-HMAC secret shared with the batch pipeline (read by
                            `fraud_assets.privacy`; unset: the public development key, loudly)
FRAUD_RULE_BLOCKED_CUSTOMERS  raw customer ids always blocked: "1,2,3" or a JSON list
FRAUD_RULE_BLOCKED_TERMINALS  raw terminal ids always blocked
FRAUD_RULE_MAX_AMOUNT         hard amount limit: a larger amount is blocked (unset: none)
FRAUD_TLS_CERTFILE / FRAUD_TLS_KEYFILE   serve HTTPS with this certificate and key
FRAUD_OPENTELEMETRY         true: FastAPI's own OpenTelemetry spans, metrics and logs go to the
                            globally configured OpenTelemetry providers (default false: the
                            service reports through /metrics only, and skips FastAPI's per-request
                            check for a configured provider)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_ORIGIN = dt.date(2018, 4, 1)


def _data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", "data")).resolve()


def _default_tracking_uri() -> str:
    folder = _data_dir() / "mlflow"
    return f"sqlite:///{folder / 'mlflow.db'}"


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


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", frozen=True)

    mlflow_tracking_uri: str = Field(default_factory=_default_tracking_uri)
    mlflow_artifacts: str | None = None
    model_name: str = "fraud-detector"
    model_alias: str = "champion"
    model_poll_seconds: float = Field(30.0, gt=0)

    redis_url: str | None = None
    redis_prefix: str = "fraud:"
    redis_timeout_seconds: float = Field(0.5, gt=0)

    api_token: str | None = None
    feedback_token: str | None = None
    investigator_token: str | None = None
    desk_budget: int = Field(100, ge=1, le=100_000)
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
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

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
