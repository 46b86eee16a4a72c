"""The landing zone as a Dagster resource: one URL, any fsspec backend."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from fraud_assets.rawdata.format import data_name

if TYPE_CHECKING:  # fsspec and Polars load in the runs that read files, not with the definitions
    from fsspec import AbstractFileSystem

    from fraud_assets.lake import Lake
    from fraud_assets.rawdata.landing import LandingListing


class FsspecLocation(dg.ConfigurableResource):
    """A place given by URL: a local folder, `s3://bucket/prefix` (with the AWS credential chain,
    or dagster-aws's S3 settings through `resources.s3`), or any fsspec URL such as
    `hdfs://namenode:8020/x`."""

    url: str = Field(description="URL: local path, s3://…, hdfs://…, webhdfs://…")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec options, e.g. for HDFS"
    )

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        from fraud_assets.lake.filesystems import filesystem_for

        return filesystem_for(self.url, **self._options())

    def _options(self) -> dict[str, Any]:
        return dict(self.storage_options)


class LandingZone(FsspecLocation):
    """Where raw batch files and their completion markers arrive."""

    def listing(self) -> LandingListing:
        from fraud_assets.rawdata.landing import list_landing

        return list_landing(*self.filesystem())

    def marker(self, batch_id: str) -> bytes | None:
        from fraud_assets.rawdata.landing import read_marker

        return read_marker(*self.filesystem(), batch_id)

    def data_path(self, batch_id: str) -> str:
        _, root = self.filesystem()
        return _join(root, data_name(batch_id))

    def open_batch(self, batch_id: str) -> IO[bytes]:
        fs, root = self.filesystem()
        return fs.open(_join(root, data_name(batch_id)), "rb")

    def size(self, batch_id: str) -> int:
        """Bytes of the batch file (0 when it is not there)."""
        fs, root = self.filesystem()
        try:
            return int(fs.size(_join(root, data_name(batch_id))) or 0)
        except FileNotFoundError:
            return 0

    def display_path(self, batch_id: str) -> str:
        """The batch file as people would name it: the URL, not the backend's bare path."""
        return self.display_file(data_name(batch_id))

    def display_file(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"

    def read_file(self, name: str) -> bytes | None:
        """A small file of the landing zone (e.g. the terminal registry); None if absent."""
        fs, root = self.filesystem()
        path = _join(root, name)
        fs.invalidate_cache(root)
        return fs.cat_file(path) if fs.exists(path) else None


class LakeStore(FsspecLocation):
    """Where clean, quarantined and feature tables live (Parquet, partitioned by date)."""

    def lake(self) -> Lake:
        from fraud_assets.lake import Lake

        return Lake(*self.filesystem())


def _join(root: str, name: str) -> str:
    from fraud_assets.lake.filesystems import join

    return join(root, name)
