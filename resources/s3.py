"""Landing zone and lake on S3 with dagster-aws's S3 settings (endpoint, region, credentials).

Kept apart from `resources.storage` so that a code location on local folders or HDFS never
imports dagster-aws and boto3 (seconds in every run process); `resources.environments` picks
these classes only for s3:// URLs.
"""

from __future__ import annotations

from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.storage import LakeStore, LandingZone


def s3fs_options(s3: S3Resource) -> dict[str, Any]:
    """Translate dagster-aws's S3 settings into s3fs options, so both speak of the same bucket."""
    client_kwargs = {
        "endpoint_url": s3.endpoint_url,
        "region_name": s3.region_name,
        "verify": s3.verify,
        "use_ssl": s3.use_ssl,
    }
    return {
        "key": s3.aws_access_key_id,
        "secret": s3.aws_secret_access_key,
        "token": s3.aws_session_token,
        "profile": s3.profile_name,
        "anon": s3.use_unsigned_session or None,
        "client_kwargs": {k: v for k, v in client_kwargs.items() if v is not None},
    }


class _S3Settings:
    s3: S3Resource

    def _options(self) -> dict[str, Any]:
        return {**s3fs_options(self.s3), **dict(self.storage_options)}  # type: ignore[attr-defined]


class S3LandingZone(_S3Settings, LandingZone):
    """The landing zone in a bucket."""

    s3: S3Resource = Field(default_factory=S3Resource, description="S3 settings")


class S3LakeStore(_S3Settings, LakeStore):
    """The lake in a bucket."""

    s3: S3Resource = Field(default_factory=S3Resource, description="S3 settings")
