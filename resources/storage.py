"""The landing zone as a Dagster resource: one URL, any fsspec backend."""

from __future__ import annotations

from typing import IO, Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from fsspec import AbstractFileSystem
from pydantic import Field

from fraud_assets.filesystems import filesystem_for, join
from fraud_assets.lake import Lake
from fraud_assets.landing import LandingListing, list_landing, read_marker
from fraud_assets.raw_format import data_name


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


class FsspecLocation(dg.ConfigurableResource):
    """A place given by URL: a local folder, `s3://bucket/prefix` (credentials and endpoint from
    `s3`, dagster-aws's S3 settings), or any fsspec URL such as `hdfs://namenode:8020/x`."""

    url: str = Field(description="URL: local path, s3://…, hdfs://…, webhdfs://…")
    s3: S3Resource = Field(
        default_factory=S3Resource, description="S3 settings, used for s3:// URLs"
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec options, e.g. for HDFS"
    )

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        options = dict(self.storage_options)
        if self.url.startswith(("s3://", "s3a://")):
            options = {**s3fs_options(self.s3), **options}
        return filesystem_for(self.url, **options)


class LandingZone(FsspecLocation):
    """Where raw batch files and their completion markers arrive."""

    def listing(self) -> LandingListing:
        return list_landing(*self.filesystem())

    def marker(self, batch_id: str) -> bytes | None:
        return read_marker(*self.filesystem(), batch_id)

    def data_path(self, batch_id: str) -> str:
        _, root = self.filesystem()
        return join(root, data_name(batch_id))

    def open_batch(self, batch_id: str) -> IO[bytes]:
        fs, root = self.filesystem()
        return fs.open(join(root, data_name(batch_id)), "rb")

    def display_path(self, batch_id: str) -> str:
        """The batch file as people would name it: the URL, not the backend's bare path."""
        return f"{self.url.rstrip('/')}/{data_name(batch_id)}"


class LakeStore(FsspecLocation):
    """Where clean, quarantined and feature tables live (Parquet, partitioned by date)."""

    def lake(self) -> Lake:
        return Lake(*self.filesystem())
