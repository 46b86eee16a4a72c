"""Any fsspec URL as (filesystem, root): local folders, s3://, hdfs://, webhdfs://, memory://."""

from __future__ import annotations

from typing import Any

import fsspec
from fsspec import AbstractFileSystem


def filesystem_for(url: str, **storage_options: Any) -> tuple[AbstractFileSystem, str]:
    options = {k: v for k, v in storage_options.items() if v is not None}
    fs, root = fsspec.core.url_to_fs(url, **options)
    return fs, root.rstrip("/") or "/"


def join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"
