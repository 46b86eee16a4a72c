"""Settings read from FRAUD_* environment variables, in one place (pydantic-settings).

No Dagster here: resources, the CLI and the services read the same values.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchSettings(BaseSettings):
    """How batch runs are cut: a backfill or a landing burst becomes ranged runs of this size."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

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
    """Bounds of the data contract that cleaning holds every row to (docs in README, Validation)."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

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
