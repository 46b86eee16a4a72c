"""The one place that chooses resources per environment (FRAUD_ENV: dev, the default, or prod).

What the environment says is read through `fraud_assets.settings` (no Dagster there): this
module only turns it into resources. The CLI and the services read the settings directly.

Secrets (the pseudonymisation key, a tracking URI that may carry a password) reach resources as
`dg.EnvVar`: the code location's snapshot, which the Dagster UI shows, holds the variable's name,
never its value (docs/secrets.md lists them all).
"""

from __future__ import annotations

import os

import dagster as dg

from fraud_assets.settings import (
    Environment,
    FeatureEngineName,
    PlatformSettings,
    platform_settings,
    secret_settings,
)
from resources.models import ModelStore, ModelTraining
from resources.online import OnlineStore
from resources.processing import FeatureEngine, PseudonymKey
from resources.storage import LakeStore, LandingZone


def model_store(settings: PlatformSettings, for_definitions: bool = False) -> ModelStore:
    """FRAUD_MLFLOW_TRACKING_URI, else a SQLite file and artifact folder under the data dir.

    `for_definitions`: the URI (`postgresql://user:password@…` perhaps) is referenced as an
    EnvVar, resolved only inside runs.
    """
    uri = settings.tracking_uri
    if settings.mlflow_tracking_uri and for_definitions:
        uri = dg.EnvVar("FRAUD_MLFLOW_TRACKING_URI")
    return ModelStore(tracking_uri=uri, artifact_location=settings.artifact_location)


def model_training(settings: PlatformSettings) -> ModelTraining:
    """FRAUD_TRAINING_WINDOW_DAYS shortens the training window (the demo's few weeks of data)."""
    window = settings.training_window_days
    return ModelTraining(window_days=window) if window else ModelTraining()


def feature_engine(settings: PlatformSettings) -> FeatureEngine:
    if settings.feature_engine is not FeatureEngineName.SPARK:
        return FeatureEngine(engine=settings.feature_engine.value)
    from resources.spark import SparkFeatureEngine, spark_resource  # pyspark only when asked

    return SparkFeatureEngine(pyspark=spark_resource(settings.spark_master))


_AWS_SECRETS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def online_store(settings: PlatformSettings) -> OnlineStore:
    """FRAUD_REDIS_URL (through dg.EnvVar: a URL may hold a password) and the label log."""
    options = {
        "label_log_dir": str(settings.label_log),
        "prefix": settings.redis_prefix,
        "origin_date": settings.origin_date.isoformat(),
    }
    if settings.redis_url:
        return OnlineStore(redis_url=dg.EnvVar("FRAUD_REDIS_URL"), **options)
    return OnlineStore(**options)


def _locations(
    settings: PlatformSettings, s3_settings: dict[str, str | None]
) -> tuple[LandingZone, LakeStore]:
    """Landing zone and lake; S3 URLs get dagster-aws's S3 settings (imported only then)."""
    landing, lake = settings.landing, settings.lake
    if not any(u.startswith(("s3://", "s3a://")) for u in (landing, lake)):
        return LandingZone(url=landing), LakeStore(url=lake)
    from dagster_aws.s3 import S3Resource

    from resources.s3 import S3LakeStore, S3LandingZone

    # Credentials come from the usual AWS chain (env, profile, instance role); keys given in the
    # environment are also named in the resource (as EnvVar: the UI shows the names only).
    secrets = {
        field: dg.EnvVar(name) for field, name in _AWS_SECRETS.items() if os.environ.get(name)
    }
    s3 = S3Resource(**{k: v for k, v in s3_settings.items() if v}, **secrets)
    zone = (
        S3LandingZone(url=landing, s3=s3) if landing.startswith("s3") else LandingZone(url=landing)
    )
    store = S3LakeStore(url=lake, s3=s3) if lake.startswith("s3") else LakeStore(url=lake)
    return zone, store


def build_resources(env: str | None = None) -> dict[str, object]:
    settings = platform_settings()
    try:
        env = Environment(env or settings.env)
    except ValueError:
        raise RuntimeError(f"Unknown FRAUD_ENV {env!r}: expected 'dev' or 'prod'") from None
    if env is Environment.DEV:
        zone, store = _locations(settings, {})
        key = PseudonymKey()
    else:
        missing = settings.missing_for_prod(secret_settings())
        if missing:
            raise RuntimeError("FRAUD_ENV=prod needs " + "; ".join(missing))
        zone, store = _locations(
            settings,
            {"endpoint_url": settings.s3_endpoint_url, "region_name": os.environ.get("AWS_REGION")},
        )
        key = PseudonymKey(key=dg.EnvVar("FRAUD_PSEUDONYM_KEY"))
    return {
        "landing_zone": zone,
        "lake": store,
        "pseudonym_key": key,
        "feature_engine": feature_engine(settings),
        "models": model_store(settings, for_definitions=True),
        "model_training": model_training(settings),
        "online_store": online_store(settings),
    }
