"""Spark's executors write a commit's data files; the driver commits them (lake/store.py).

Executors write Parquet into a staging folder of the commit,
`{root}/_staging/{stage}/{batch}.{commit}/`; the driver then moves each file to a fresh name of
the batch in its table (`CommitWriter.adopt`: a rename on a disk or HDFS, a server-side copy on
an object store; no row passes through the driver) and publishes the manifest. A crash before
the manifest leaves the committed version as it was: readers list files through manifests only,
staged files are never read, and the next commit of the batch removes them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_assets.lake.store import CommitWriter, Lake
from fraud_assets.spark.arrow import partition_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STAGING = "_staging"
DATE_FOLDER = "tx_date"
_PART = re.compile(r"part-(\d+)")


def spark_url(lake: Lake, path: str) -> str:
    """A lake path as Spark names it: `file:/…` on a disk, `s3a://` for S3 (Hadoop's connector)."""
    url = lake.fs.unstrip_protocol(path)
    return "s3a://" + url.removeprefix("s3://") if url.startswith("s3://") else url


def staging_folder(lake: Lake, writer: CommitWriter, name: str = "") -> str:
    folder = lake.path(STAGING, writer.stage, f"{writer.batch_id}.{writer.commit_id}")
    return f"{folder}/{name}" if name else folder


def sweep(lake: Lake, stage: str, batch_id: str) -> None:
    """Remove staging folders of the batch's earlier attempts (crashed or finished)."""
    lake.fs.invalidate_cache(lake.root)
    for path in lake.fs.glob(lake.path(STAGING, stage, f"{batch_id}.*")):
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(path, recursive=True)


def write_staged(frame: DataFrame, lake: Lake, folder: str, by: list[str] | None = None) -> None:
    """Executors write `frame` as Parquet under `folder`, one sub-folder per value of `by`."""
    writer = frame.write.mode("errorifexists").option("compression", "snappy")
    if by:
        writer = writer.partitionBy(*by)
    writer.parquet(spark_url(lake, folder))


@dataclass(frozen=True)
class StagedFile:
    path: str
    values: dict[str, str]  # partition folder values, e.g. {"tx_date": "2025-01-01"}
    part: int  # Spark's task number: files of one date in this order keep the rows' order
    rows: int


def staged_files(lake: Lake, folder: str) -> list[StagedFile]:
    """The Parquet files under a staging folder, with their partition values and row counts
    (read from each file's footer, never its rows), in (partition values, part) order."""
    lake.fs.invalidate_cache(folder)
    out = []
    for path in lake.fs.find(folder):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(".parquet") or name.startswith((".", "_")):
            continue
        relative = path[len(folder.rstrip("/")) + 1 :].split("/")[:-1]
        values = dict(part.split("=", 1) for part in relative if "=" in part)
        match = _PART.search(name)
        with lake.fs.open(path, "rb") as f:
            rows = pq.ParquetFile(f).metadata.num_rows
        out.append(StagedFile(path, values, int(match.group(1)) if match else 0, rows))
    return sorted(out, key=lambda f: (sorted(f.values.items()), f.part, f.path))


def adopt_all(writer: CommitWriter, table: str, files: list[StagedFile], by_date: bool) -> int:
    """Adopt staged files into the commit as `table`; the rows adopted."""
    numbers: dict[str | None, int] = {}
    rows = 0
    for staged in files:
        if staged.rows == 0 and by_date:
            continue  # the lake holds no empty file for a date
        day = staged.values.get(DATE_FOLDER) if by_date else None
        number = numbers.get(day, 0)
        numbers[day] = number + 1
        writer.adopt(table, staged.path, staged.rows, day, number)
        rows += staged.rows
    return rows


_WRITTEN = "values string, path string, part long, rows long"


def write_staged_by(
    frame: DataFrame,
    lake: Lake,
    folder: str,
    by: list[str],
    order: list[str],
    inspect: Callable[[pl.DataFrame], None] | None = None,
) -> list[StagedFile]:
    """Executors write each partition of `frame` under `folder`, one file per value of `by`
    (`{by}={value}/` folders, `by` columns left out of the file), rows in `order`; the files
    written, as `staged_files` lists them.

    The lake's own Parquet writer (`Lake._write_parquet`, what the default engine writes with)
    runs in each task on the partition's rows, sorted by Polars there: no sort and no Parquet
    encoding in the JVM. A file's name carries the task's partition and attempt; only the files
    of the attempts that succeeded are returned (the driver gets their paths and row counts,
    never a row), others are left in `folder` for its removal. `inspect`, when given, is
    called in each task with the task's rows as written (without the `by` columns).
    """
    import json

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        rows = partition_frame(batches)
        if rows is None:
            return
        context = TaskContext.get()
        task, attempt = context.partitionId(), context.attemptNumber()
        rows = rows.sort([*by, *order])  # type: ignore[union-attr]
        if inspect is not None:
            inspect(rows.drop(by))
        out = []
        for values, part in rows.partition_by(by, as_dict=True, maintain_order=True).items():
            named = dict(zip(by, (str(v) for v in values), strict=True))
            sub = "/".join(f"{k}={v}" for k, v in named.items())
            path = f"{folder}/{sub}/part-{task:05d}-{attempt}.parquet"
            lake._write_parquet(path, part.drop(by))  # noqa: SLF001 - the lake's own writer
            out.append((json.dumps(named), path, task, part.height))
        yield pa.RecordBatch.from_pylist(
            [dict(zip(("values", "path", "part", "rows"), o, strict=True)) for o in out],
            schema=pa.schema(
                [
                    ("values", pa.string()),
                    ("path", pa.string()),
                    ("part", pa.int64()),
                    ("rows", pa.int64()),
                ]
            ),
        )

    found = frame.mapInArrow(write, _WRITTEN).collect()
    files = [StagedFile(r["path"], json.loads(r["values"]), r["part"], r["rows"]) for r in found]
    return sorted(files, key=lambda f: (sorted(f.values.items()), f.part, f.path))
