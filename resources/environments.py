"""The one place that chooses resources per environment (FRAUD_ENV: dev, the default, or prod).

Secrets (the pseudonymisation key, a tracking URI that may carry a password) reach resources as
`dg.EnvVar`: the code location's snapshot, which the Dagster UI shows, holds the variable's name,
never its value (docs/secrets.md lists them all).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from resources.models import ModelStore, ModelTraining
from resources.online import OnlineStore
from resources.processing import FeatureEngine, PseudonymKey
from resources.storage import LakeStore, LandingZone


def data_dir() -> Path:
    """Root of the embedded defaults: landing zone, lake and Dagster home live below it."""
    return Path(os.environ.get("FRAUD_DATA_DIR", "data")).resolve()


def landing_url() -> str:
    return os.environ.get("FRAUD_LANDING_URL") or str(data_dir() / "landing")


def lake_url() -> str:
    return os.environ.get("FRAUD_LAKE_URL") or str(data_dir() / "lake")


def model_store(for_definitions: bool = False) -> ModelStore:
    """FRAUD_MLFLOW_TRACKING_URI, else a SQLite file and artifact folder under the data dir.

    `for_definitions`: the URI (`postgresql://user:password@…` perhaps) is referenced as an
    EnvVar, resolved only inside runs; command-line tools, which show no snapshot, get the value.
    """
    uri = os.environ.get("FRAUD_MLFLOW_TRACKING_URI")
    if uri:
        return ModelStore(
            tracking_uri=dg.EnvVar("FRAUD_MLFLOW_TRACKING_URI") if for_definitions else uri,
            artifact_location=os.environ.get("FRAUD_MLFLOW_ARTIFACTS"),
        )
    folder = data_dir() / "mlflow"
    return ModelStore(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=str(folder / "artifacts"),
    )


def model_training() -> ModelTraining:
    """FRAUD_TRAINING_WINDOW_DAYS shortens the training window (the demo's few weeks of data)."""
    window = os.environ.get("FRAUD_TRAINING_WINDOW_DAYS")
    return ModelTraining(window_days=int(window)) if window else ModelTraining()


def feature_engine() -> FeatureEngine:
    engine = os.environ.get("FRAUD_FEATURE_ENGINE", "polars")
    if engine != "spark":
        return FeatureEngine(engine=engine)
    from resources.spark import SparkFeatureEngine, spark_resource  # pyspark only when asked

    return SparkFeatureEngine(pyspark=spark_resource())  # FRAUD_SPARK_MASTER, else local[2]


_AWS_SECRETS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def online_store() -> OnlineStore:
    """FRAUD_REDIS_URL (through dg.EnvVar: a URL may hold a password) and the label log."""
    options = {
        "label_log_dir": os.environ.get("FRAUD_LABEL_LOG_DIR") or str(data_dir() / "label_log"),
        "prefix": os.environ.get("FRAUD_REDIS_PREFIX", "fraud:"),
        "origin_date": os.environ.get("FRAUD_ORIGIN_DATE") or "2018-04-01",
    }
    if os.environ.get("FRAUD_REDIS_URL", "").strip():
        return OnlineStore(redis_url=dg.EnvVar("FRAUD_REDIS_URL"), **options)
    return OnlineStore(**options)


def _locations(s3_settings: dict[str, str | None]) -> tuple[LandingZone, LakeStore]:
    """Landing zone and lake; S3 URLs get dagster-aws's S3 settings (imported only then)."""
    landing, lake = landing_url(), lake_url()
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
    env = env or os.environ.get("FRAUD_ENV", "dev")
    if env == "dev":
        zone, store = _locations({})
        return {
            "landing_zone": zone,
            "lake": store,
            "pseudonym_key": PseudonymKey(),
            "feature_engine": feature_engine(),
            "models": model_store(for_definitions=True),
            "model_training": model_training(),
            "online_store": online_store(),
        }
    if env == "prod":
        if not os.environ.get("FRAUD_LANDING_URL"):
            raise RuntimeError(
                "FRAUD_ENV=prod needs FRAUD_LANDING_URL (s3://…, hdfs://…, or a path)"
            )
        zone, store = _locations(
            {
                "endpoint_url": os.environ.get("FRAUD_S3_ENDPOINT_URL"),
                "region_name": os.environ.get("AWS_REGION"),
            }
        )
        if not os.environ.get("FRAUD_PSEUDONYM_KEY"):
            raise RuntimeError(
                "FRAUD_ENV=prod needs FRAUD_PSEUDONYM_KEY, the pseudonymisation secret"
            )
        if not os.environ.get("FRAUD_MLFLOW_TRACKING_URI"):
            raise RuntimeError(
                "FRAUD_ENV=prod needs FRAUD_MLFLOW_TRACKING_URI (an MLflow server or database)"
            )
        return {
            "landing_zone": zone,
            "lake": store,
            "pseudonym_key": PseudonymKey(key=dg.EnvVar("FRAUD_PSEUDONYM_KEY")),
            "feature_engine": feature_engine(),
            "models": model_store(for_definitions=True),
            "model_training": model_training(),
            "online_store": online_store(),
        }
    raise RuntimeError(f"Unknown FRAUD_ENV {env!r}: expected 'dev' or 'prod'")
