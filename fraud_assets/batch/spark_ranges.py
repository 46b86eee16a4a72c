"""Clean one raw batch on Spark by byte ranges: Spark schedules, each task runs the default engine.

The raw file is cut into byte ranges (`RAW_RANGE_BYTES`, a multiple of the cores); a line belongs
to the range its first byte is in. Two jobs, one task per range, each task reading its range
straight from the landing zone (a local file, or `s3://`/`hdfs://` through fsspec):

1. *count*: the range's lines (line ends counted, no parsing). When the origin of the time
   counters must be inferred, the range is parsed and judged too, and the task also returns the
   origin days of its distinct rows (the driver takes their mode, as `engine._infer_origin`).
2. *clean*: parse and judge the range with the default engine's parser and rules
   (`parsing.parse_range`: the compiled fast path, the general parser, `rules.RowRules`, the
   other batches' committed ids through `CommittedIds`, which reads only the batches whose
   recorded id range meets the range's ids), its lines numbered from the lines of the earlier
   ranges (the first job's counts); keep the first occurrence of each id
   (`engine.first_occurrences`), repair the times and pseudonymise (`engine.finish_rows`), and
   write the range's clean rows by date and its quarantine into the commit's staging folder with
   the lake's writer. The schema checks run on the rows written. The task returns the files
   written, its counters, its checks and its good rows' id span: no row reaches the driver.

Cleaning the ranges apart gives the default engine's tables when no id repeats across ranges
and the ranges hold ascending ids (an export in id order: then the files of a date, in range
order, hold the default engine's id order). The driver checks the spans before it commits; when
they overlap, the staged files are discarded and `clean_by_ranges` returns None: the caller
cleans with the row plan (batch/spark_clean.py). Commits made here record their id range
(`ID_RANGE`) as the default engine's do, so a later batch knows without reading any id whether
it can collide. docs/decisions/spark-byte-ranges-and-time-slices.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from fraud_assets.cleaning.engine import (
    QUARANTINE_SCHEMA,
    CleaningConfig,
    finish_rows,
    first_occurrences,
)
from fraud_assets.cleaning.parsing import FIRST_DATA_LINE, parse_range
from fraud_assets.lake import CLEAN, QUARANTINE, RESTRICTED_QUARANTINE, BatchCoverage, Lake
from fraud_assets.lake.spark_staging import StagedFile, adopt_all, staging_folder, sweep
from fraud_assets.lake.store import ID_RANGE
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.spark.arrow import report, run_numbered, task_number

RAW_RANGE_BYTES = 128 << 20  # a task's share of the raw file (≈ 1.5 M lines)
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class RawFile:
    """Where a task finds the raw file, and how it is cut."""

    url: str  # an fsspec URL (s3a:// is read as s3://)
    size: int
    body: int  # the first byte after the header line
    cuts: tuple[int, ...]  # range k is [cuts[k], cuts[k + 1]), before aligning to lines
    # The landing zone's own file system (its S3 endpoint and credentials), pickled into the
    # tasks as the lake's is; None: fsspec's defaults for the URL.
    fs: Any = None

    @property
    def ranges(self) -> int:
        return len(self.cuts) - 1


def raw_file(url: str, header: bytes, parallelism: int, fs: Any = None) -> RawFile:
    """The file's size (one metadata call) and its cuts: ranges of at most RAW_RANGE_BYTES, a
    multiple of the cores so that every core gets an equal share. `fs`: the landing zone's
    file system, else fsspec's for the URL."""
    fs, path = _fs(url, fs)
    size = int(fs.size(path))
    body = min(len(header) + 1, size)
    span = size - body
    wanted = max(1, parallelism)
    count = wanted * max(1, -(-span // (wanted * RAW_RANGE_BYTES)))
    if span < count:  # tiny file: one range
        count = 1
    cuts = tuple(body + span * k // count for k in range(count)) + (size,)
    return RawFile(url, size, body, cuts, fs)


def _fs(url: str, fs: Any = None):  # noqa: ANN202 - (fsspec file system, path)
    import fsspec

    if url.startswith("s3a://"):
        url = "s3://" + url.removeprefix("s3a://")
    if url.startswith("file:") and not url.startswith("file://"):
        url = "file://" + url.removeprefix("file:")
    if fs is not None:
        return fs, fs._strip_protocol(url)  # noqa: SLF001 - fsspec's own URL -> path
    return fsspec.core.url_to_fs(url)


def _line_start(f, pos: int, raw: RawFile) -> int:  # noqa: ANN001 - a binary file
    """The first line start at or after `pos`: a line belongs to the range its first byte is in."""
    if pos <= raw.body:
        return raw.body
    if pos >= raw.size:
        return raw.size
    f.seek(pos - 1)
    at = pos - 1
    while True:
        chunk = f.read(1 << 16)
        if not chunk:
            return raw.size
        hit = chunk.find(b"\n")
        if hit >= 0:
            return at + hit + 1
        at += len(chunk)


def read_range(raw: RawFile, k: int) -> bytes:
    """Range k's whole lines, as bytes."""
    fs, path = _fs(raw.url, raw.fs)
    with fs.open(path, "rb") as f:
        begin = _line_start(f, raw.cuts[k], raw)
        end = _line_start(f, raw.cuts[k + 1], raw)
        if end <= begin:
            return b""
        f.seek(begin)
        return f.read(end - begin)


@dataclass(frozen=True)
class _Task:
    """What both jobs' tasks need (pickled into the task)."""

    raw: RawFile
    batch_id: str
    config: CleaningConfig  # without `committed` (a function of the driver's lake state)
    key: bytes
    lake: Lake | None = None
    others: dict | None = None  # other batches' clean commits (their recorded id ranges)


def _parse(task: _Task, k: int, first_line: int, lake_lookup: bool):  # noqa: ANN202
    """Range k parsed and judged, lines numbered from `first_line`; with `lake_lookup`, ids
    other batches committed are `duplicate_id` (their ids read only where their recorded range
    meets this range's: `CommittedIds`, as the default engine does)."""
    from fraud_assets.cleaning.parsing import ParsedBatch

    data = read_range(task.raw, k)
    config = task.config
    if lake_lookup and task.others:
        from fraud_assets.batch.committed import CommittedIds

        lookup = CommittedIds(task.lake, task.others).of_others(task.batch_id)
        config = _with_committed(config, lookup)
    rules = config.rules()
    if not data:
        return ParsedBatch(pl.DataFrame(), pl.DataFrame(), 0), 0
    return parse_range(data, 0, len(data), first_line, rules), _count(data)


def _with_committed(config: CleaningConfig, lookup) -> CleaningConfig:  # noqa: ANN001
    from dataclasses import replace

    return replace(config, committed=lookup)


def _count(data: bytes) -> int:
    from fraud_assets.cleaning._line_parser import count_lines

    return int(count_lines(data, 0, len(data)))


def _origin_days(unique: pl.DataFrame) -> dict[str, int]:
    """(timestamp - seconds) day -> rows: what `engine._infer_origin` takes the mode of."""
    if unique.height == 0:
        return {}
    day = (pl.col("tx_datetime") - pl.duration(seconds=pl.col("tx_time_seconds"))).dt.date()
    counts = unique.select(day.alias("day")).group_by("day").len()
    return {d.isoformat(): int(n) for d, n in counts.iter_rows()}


def _scan(task: _Task):  # noqa: ANN202 - the first job's mapInArrow function
    """Range k's lines; when the origin must be inferred, also the origin days of its distinct
    rows (then the range is parsed; otherwise only its line ends are counted)."""

    def scan(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        k = task_number(batches)
        if k < 0:
            return
        if task.config.origin_date is not None:
            yield from report({"k": k, "lines": _count(read_range(task.raw, k))})
            return
        parsed, lines = _parse(task, k, FIRST_DATA_LINE, lake_lookup=True)
        valid = parsed.valid
        payload: dict = {"k": k, "lines": lines}
        if valid.height:
            payload["days"] = _origin_days(first_occurrences(valid)[0])
        yield from report(payload)

    return scan


def _writer(task: _Task, first_lines: list[int], origin: dt.date, folder: str):  # noqa: ANN202
    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from fraud_assets.batch.schemas import (
            QuarantinedTransactions,
            clean_transactions_schema,
        )
        from fraud_assets.batch.spark_checks import failure_rows

        k = task_number(batches)
        if k < 0:
            return
        attempt = TaskContext.get().attemptNumber()
        lake = task.lake
        assert lake is not None
        parsed, lines = _parse(task, k, first_lines[k], lake_lookup=True)
        payload: dict = {"k": k, "lines": lines, "files": [], "rows": 0, "quarantined": 0}
        name = f"part-{k:05d}-{attempt}.parquet"
        if parsed.valid.height:
            ids = parsed.valid["transaction_id"]
            payload["span"] = [int(ids.min()), int(ids.max())]
            unique, in_order = first_occurrences(parsed.valid)
            clean, repaired = finish_rows(
                unique, in_order, task.batch_id, Pseudonymizer(task.key), origin
            )
            schema = clean_transactions_schema(task.config.max_amount, task.config.period)
            days = clean["tx_datetime"].dt.date()
            hashes = clean.hash_rows(seed=0).to_numpy()
            payload |= {
                "rows": clean.height,
                "dropped": parsed.valid.height - unique.height,
                "repaired": repaired,
                "first": days.min().isoformat() if clean.height else None,
                "last": days.max().isoformat() if clean.height else None,
                "low": int(clean["transaction_id"].min()) if clean.height else None,
                "high": int(clean["transaction_id"].max()) if clean.height else None,
                "hash_sum": int(hashes.sum(dtype=np.uint64)),
                "hash_xor": int(np.bitwise_xor.reduce(hashes)) if clean.height else 0,
                "clean_failures": failure_rows(schema, clean, None),
            }
            for (day,), part in (
                clean.with_columns(_d=days)
                .partition_by("_d", as_dict=True, maintain_order=True)
                .items()
            ):
                path = f"{folder}/clean/tx_date={day.isoformat()}/{name}"
                lake._write_parquet(path, part.drop("_d"))  # noqa: SLF001 - the lake's writer
                payload["files"].append([CLEAN, day.isoformat(), path, part.height])
        rejected = parsed.rejected
        if rejected.height:
            quarantine = rejected.select(
                pl.lit(task.batch_id).alias("batch_id"), "line_no", "line", "reason"
            ).cast(QUARANTINE_SCHEMA)
            payload["quarantined"] = quarantine.height
            payload["by_reason"] = dict(quarantine["reason"].value_counts().iter_rows())
            payload["quarantine_failures"] = failure_rows(QuarantinedTransactions, quarantine, None)
            for table, columns in (
                (QUARANTINE, ["batch_id", "line_no", "reason"]),
                (RESTRICTED_QUARANTINE, ["batch_id", "line_no", "line"]),
            ):
                path = f"{folder}/{table}/{name}"
                lake._write_parquet(path, quarantine.select(columns))  # noqa: SLF001
                payload["files"].append([table, None, path, quarantine.height])
        yield from report(payload)

    return write


def clean_by_ranges(
    spark,  # noqa: ANN001 - a SparkSession
    lake: Lake,
    raw_url: str,
    header: bytes,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    config: CleaningConfig,
    parallelism: int,
    raw_fs: Any = None,
):  # noqa: ANN201 - SparkCleanResult's fields, or None when the ranges cannot be cleaned apart
    """Clean the raw file at `raw_url` into the lake by byte ranges (module docstring): the
    commit's figures (`spark_clean.SparkCleanResult`'s fields, a dict: that module calls this
    one), or None when the batch needs the row-shuffling plan (ids out of order across ranges,
    or possible collisions with other batches' ids while the origin must be inferred, or an
    encrypted restricted zone)."""
    if lake.quarantine_key is not None:
        return None
    raw = raw_file(raw_url, header, parallelism, raw_fs)
    others = {b: c for b, c in lake.commits(CLEAN).items() if b != batch_id}
    task = _Task(raw, batch_id, config, pseudonymizer._key, lake, others)  # noqa: SLF001
    scans = run_numbered(spark, raw.ranges, _scan(task))
    origin = config.origin_date or _mode_day(scans)
    first_lines, before = [], FIRST_DATA_LINE
    for s in scans:
        first_lines.append(before)
        before += s["lines"]
    raw_rows = before - FIRST_DATA_LINE
    sweep(lake, CLEAN, batch_id)
    try:
        with lake.commit(CLEAN, batch_id) as commit:
            folder = staging_folder(lake, commit)
            done = run_numbered(spark, raw.ranges, _writer(task, first_lines, origin, folder))
            spans = [d["span"] for d in done if "span" in d]
            if any(a[1] >= b[0] for a, b in zip(spans, spans[1:], strict=False)):
                # An id could repeat across ranges, or the ranges are not in id order: the
                # staged files are not committed (the commit is discarded).
                raise _NotApart
            result = _commit(commit, done, batch_id, raw_rows, origin, config)
    except _NotApart:
        return None
    finally:
        sweep(lake, CLEAN, batch_id)
    return result


class _NotApart(Exception):
    """The ranges' ids overlap: the batch needs the row-shuffling plan."""


def _mode_day(scans: list[dict]) -> dt.date:
    counts: dict[str, int] = {}
    for s in scans:
        for day, n in s.get("days", {}).items():
            counts[day] = counts.get(day, 0) + n
    if not counts:
        return _EPOCH
    return dt.date.fromisoformat(min(counts, key=lambda d: (-counts[d], d)))


def _commit(commit, done: list[dict], batch_id: str, raw_rows: int, origin, config) -> dict:  # noqa: ANN001
    from fraud_assets.batch.schemas import QuarantinedTransactions, failures
    from fraud_assets.batch.spark_checks import summarise

    rows = sum(d["rows"] for d in done)
    quarantined = sum(d["quarantined"] for d in done)
    duplicates = sum(d.get("dropped", 0) for d in done)
    if raw_rows != rows + quarantined + duplicates:  # a bug: the commit is not published
        raise AssertionError(f"{batch_id}: {raw_rows} lines, {rows + quarantined + duplicates} out")
    staged = {
        table: [
            StagedFile(p, {"tx_date": day} if day else {}, d["k"], n)
            for d in done
            for t, day, p, n in d["files"]
            if t == table
        ]
        for table in (CLEAN, QUARANTINE, RESTRICTED_QUARANTINE)
    }
    clean_files = sorted(staged[CLEAN], key=lambda f: (f.values["tx_date"], f.part))
    clean_rows = adopt_all(commit, CLEAN, clean_files, by_date=True)
    if clean_rows != rows:
        raise AssertionError(f"{batch_id}: {clean_rows} clean rows staged, not {rows}")
    if quarantined:
        adopt_all(commit, QUARANTINE, staged[QUARANTINE], by_date=False)
        adopt_all(commit, RESTRICTED_QUARANTINE, staged[RESTRICTED_QUARANTINE], by_date=False)
        q_schema = summarise([f for d in done for f in d.get("quarantine_failures", [])])
        q_schema = q_schema.get(None, [])
    else:  # the lake holds an empty quarantine file, as the default engine writes
        empty = pl.DataFrame(schema=QUARANTINE_SCHEMA)
        commit.quarantine(empty)
        q_schema = failures(QuarantinedTransactions, empty)
    clean_schema = summarise([f for d in done for f in d.get("clean_failures", [])]).get(None, [])
    kept = [d for d in done if d["rows"]]
    first, last = _coverage(config, kept, batch_id)
    hash_sum = sum(d["hash_sum"] for d in kept) % (1 << 64)
    hash_xor = 0
    for d in kept:
        hash_xor ^= d["hash_xor"]
    digest = hashlib.sha256(b"spark-ranges-content-1:")
    digest.update(f"{rows}:{hash_sum}:{hash_xor}".encode())
    commit.meta["coverage"] = asdict(
        BatchCoverage(
            batch_id,
            first.isoformat(),
            last.isoformat(),
            clean_rows,
            origin.isoformat(),
            content=digest.hexdigest()[:24],
        )
    )
    commit.meta[ID_RANGE] = [kept[0]["low"], kept[-1]["high"]] if kept else []
    by_reason: dict[str, int] = {}
    for d in done:
        for reason, n in d.get("by_reason", {}).items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    repaired = {k: sum(d["repaired"].get(k, 0) for d in kept) for k in _REPAIRED}
    return dict(
        batch_id=batch_id,
        raw_rows=raw_rows,
        clean_rows=clean_rows,
        quarantined=quarantined,
        duplicates=duplicates,
        origin=origin,
        first=first,
        last=last,
        repaired=repaired,
        by_reason=dict(sorted(by_reason.items())),
        clean_schema=clean_schema,
        quarantine_schema=q_schema,
    )


_REPAIRED = ("hour_24", "tx_time_days", "tx_time_seconds")


def _coverage(config: CleaningConfig, kept: list[dict], batch_id: str) -> tuple[dt.date, dt.date]:
    if config.period is not None:
        return config.period.first, config.period.last
    if not kept:
        day = dt.date.fromisoformat(batch_id)
        return day, day
    return (
        dt.date.fromisoformat(min(d["first"] for d in kept)),
        dt.date.fromisoformat(max(d["last"] for d in kept)),
    )
