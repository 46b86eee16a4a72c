"""The lake: clean, quarantine and feature tables as Parquet, committed batch by batch.

    {root}/clean/tx_date=YYYY-MM-DD/{batch}.{commit}.parquet   clean rows of one (date, batch)
    {root}/quarantine/{batch}.{commit}.parquet                 rejected rows: line no., reason
    {root}/restricted/quarantine/{batch}.{commit}.parquet      their raw lines (restricted zone)
    {root}/features/tx_date=YYYY-MM-DD/{batch}.{commit}.parquet
    {root}/_commits/clean/{batch}.json                         the batch's clean commit
    {root}/_commits/features/{batch}.json                      the batch's feature commit
    {root}/reports/drift/{batch}.json|html                     drift spec and rendered report

Every write goes to files with fresh names, never over a file a reader may be reading; the
stage's manifest, written last in one step, makes them the batch's version; files it no longer
names are then removed. Readers list files through the manifests only, so files of a crashed
attempt and of superseded versions are never read. docs/lake.md describes the model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import polars as pl
from fsspec import AbstractFileSystem

from fraud_assets.lake import restricted
from fraud_assets.lake.atomic import is_local, sync_file, sync_folder, write_atomic
from fraud_assets.lake.coverage import BatchCoverage
from fraud_assets.lake.crash import (
    AFTER_FIRST_FILE,
    AFTER_MANIFEST,
    BEFORE_FIRST_FILE,
    BEFORE_MANIFEST,
    MID_FILE,
    armed,
    crash_if,
    die,
)
from fraud_assets.lake.filesystems import join
from fraud_assets.lake.manifests import COMMITS, Commit, FileEntry, manifest_path, new_commit_id

CLEAN, QUARANTINE, FEATURES, REPORTS = "clean", "quarantine", "features", "reports"
LABELS = "fraud_labels"  # the scoring service's accepted labels (fraud_assets/serving/labels.py)
FEEDBACK = "feedback_features"  # per batch, from labels known before each row (features/feedback)
RESTRICTED_QUARANTINE = f"{restricted.RESTRICTED}/{QUARANTINE}"
# A stage is what one commit makes visible together.
STAGES: dict[str, tuple[str, ...]] = {
    CLEAN: (CLEAN, QUARANTINE, RESTRICTED_QUARANTINE),
    FEATURES: (FEATURES,),
    LABELS: (LABELS,),
    FEEDBACK: (FEEDBACK,),
}
TABLES = tuple(t for tables in STAGES.values() for t in tables)
# Partitioned by transaction date; the others: a file per batch.
BY_DATE = {CLEAN, FEATURES, LABELS, FEEDBACK}
RAW_LINE = "line"  # the quarantine column that holds the raw line (real ids): restricted
WRITER_THREADS = 4  # Parquet files written side by side
READ_ATTEMPTS = 3  # a commit landing mid-read removes files a reader listed: read again
_FEW_BATCHES = 8  # up to this many named batches, read their manifests one by one
# A clean commit's [lowest, highest] transaction id ([] when it has no rows): lets the
# cross-batch duplicate check skip batches whose ids cannot collide (batch/committed.py).
ID_RANGE = "transaction_id_range"


class LakeReadError(RuntimeError):
    """A committed file could not be read (removed by hand, or a commit kept landing mid-read)."""


def stage_of(table: str) -> str:
    for stage, tables in STAGES.items():
        if table in tables:
            return stage
    raise ValueError(f"unknown lake table {table!r}: expected one of {', '.join(TABLES)}")


class Lake:
    def __init__(
        self, fs: AbstractFileSystem, root: str, quarantine_key: bytes | None = None
    ) -> None:
        self.fs, self.root = fs, root
        self._quarantine_key = quarantine_key

    @property
    def quarantine_key(self) -> bytes | None:
        """Key of the restricted zone: given, else FRAUD_QUARANTINE_KEY, else no encryption."""
        return self._quarantine_key or restricted.quarantine_key()

    def path(self, *parts: str) -> str:
        return join(self.root, "/".join(parts))

    # -- committing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def commit(self, stage: str, batch_id: str) -> Iterator[CommitWriter]:
        """Write a batch's new version of a stage; it becomes visible when the block ends.

        An exception inside the block leaves the previous version as it was.
        """
        if stage not in STAGES:
            raise ValueError(f"unknown lake stage {stage!r}")
        writer = CommitWriter(self, stage, batch_id, self.commit_of(stage, batch_id))
        try:
            yield writer
        except BaseException:
            writer.discard()
            raise
        writer.published = self._publish(writer)

    def commit_clean(
        self,
        batch_id: str,
        clean: pl.DataFrame,
        quarantine: pl.DataFrame,
        coverage: BatchCoverage,
    ) -> Commit:
        """The batch's clean rows, quarantine and coverage, as one commit."""
        with self.commit(CLEAN, batch_id) as commit:
            commit.by_date(CLEAN, clean)
            commit.quarantine(quarantine)
            commit.meta["coverage"] = asdict(coverage)
            ids = clean["transaction_id"]
            commit.meta[ID_RANGE] = [int(ids.min()), int(ids.max())] if clean.height else []
        return commit.published

    def write_by_date(self, table: str, batch_id: str, frame: pl.DataFrame) -> list[str]:
        """Commit `frame` as the batch's rows of `table`, one file per transaction date.

        The stage's other tables keep their committed files.
        """
        stage = stage_of(table)
        with self.commit(stage, batch_id) as commit:
            for other in STAGES[stage]:
                if other != table:
                    commit.keep(other)
            paths = commit.by_date(table, frame)
        return paths

    def write_quarantine(self, batch_id: str, frame: pl.DataFrame) -> str:
        """Commit the batch's quarantine (raw lines to the restricted zone); clean rows kept."""
        with self.commit(CLEAN, batch_id) as commit:
            commit.keep(CLEAN)
            path = commit.quarantine(frame)
        return path

    def write_coverage(self, coverage: BatchCoverage) -> None:
        with self.commit(CLEAN, coverage.batch_id) as commit:
            for table in STAGES[CLEAN]:
                commit.keep(table)
            commit.meta["coverage"] = asdict(coverage)

    def _publish(self, writer: CommitWriter) -> Commit:
        stage, batch_id = writer.stage, writer.batch_id
        crash_if(stage, BEFORE_MANIFEST)
        if is_local(self.fs):  # the files' folder entries reach the disk before the commit
            for folder in {self.path(f.path).rsplit("/", 1)[0] for f in writer.written}:
                sync_folder(folder)
        commit = Commit(
            stage=stage,
            batch_id=batch_id,
            commit_id=writer.commit_id,
            committed_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            files=tuple(writer.files),
            meta=writer.meta,
        )
        write_atomic(
            self.fs, self.path(manifest_path(stage, batch_id)), commit.to_json(), crash_stage=stage
        )
        crash_if(stage, AFTER_MANIFEST)
        self._collect(commit)
        return commit

    def _collect(self, commit: Commit) -> None:
        """Remove the batch's files its commit does not name: superseded and crashed ones."""
        keep = {self.path(f.path) for f in commit.files}
        self.fs.invalidate_cache(self.root)
        for table in STAGES[commit.stage]:
            for path in self._batch_files(table, commit.batch_id):
                if path not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(path)
        leftovers = self.path(COMMITS, commit.stage, f".{commit.batch_id}.json.*.tmp")
        for path in self.fs.glob(leftovers):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path)

    def _batch_files(self, table: str, batch_id: str) -> list[str]:
        """Every file of the batch in `table`, committed or not (`{batch}.*`)."""
        if table in BY_DATE:
            pattern = self.path(table, "tx_date=*", f"{batch_id}.*")
        else:
            pattern = self.path(table, f"{batch_id}.*")
        return [p.rstrip("/") for p in self.fs.glob(pattern)]

    def _write_parquet(
        self, path: str, frame: pl.DataFrame, key: bytes | None = None, half: bool = False
    ) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        local = is_local(self.fs)
        # snappy: Spark's default codec, and twice as fast to write as zstd for ~1.5x the size.
        if local and key is None and not half:  # a third faster than through a Python file
            frame.write_parquet(path, compression="snappy", statistics=True)
            sync_file(path)
            return
        if key is None and not half:
            with self.fs.open(path, "wb") as f:
                frame.write_parquet(f, compression="snappy", statistics=True)
            return
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="snappy", statistics=True)
        data = buffer.getvalue()
        if key is not None:
            data = restricted.encrypt(data, key)
        if half:  # the crash tests' torn file; an object store never shows half an object
            if local:
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
            die()
        if local:
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        else:
            self.fs.pipe_file(path, data)

    # -- reports and other single files -------------------------------------------------------

    def write_report(self, kind: str, batch_id: str, html: str) -> str:
        path = self.path(REPORTS, kind, f"{batch_id}.html")
        write_atomic(self.fs, path, html.encode("utf-8"))
        return path

    def read_report(self, kind: str, batch_id: str) -> str | None:
        path = self.path(REPORTS, kind, f"{batch_id}.html")
        self.fs.invalidate_cache(self.root)
        if not self.fs.exists(path):
            return None
        return self.fs.cat_file(path).decode("utf-8")

    # -- reading ------------------------------------------------------------------------------

    def commits(self, stage: str) -> dict[str, Commit]:
        """The committed version of every batch in a stage, by batch id."""
        if stage not in STAGES:
            raise ValueError(f"unknown lake stage {stage!r}")
        self.fs.invalidate_cache(self.root)
        paths = sorted(self.fs.glob(self.path(COMMITS, stage, "*.json")))
        if not paths:
            return {}
        contents = self.fs.cat(paths)
        found = {}
        for path in paths:
            data = contents.get(path)
            commit = Commit.from_json(data if data is not None else self.fs.cat_file(path))
            found[commit.batch_id] = commit
        return found

    def commit_of(self, stage: str, batch_id: str) -> Commit | None:
        path = self.path(manifest_path(stage, batch_id))
        try:
            return Commit.from_json(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def coverage(self) -> dict[str, BatchCoverage]:
        return {
            batch_id: BatchCoverage(**commit.meta["coverage"])
            for batch_id, commit in self.commits(CLEAN).items()
            if "coverage" in commit.meta
        }

    def files(
        self,
        table: str,
        first: dt.date | None = None,
        last: dt.date | None = None,
        batches: Collection[str] | None = None,
        exclude_batches: Collection[str] = (),
    ) -> list[FileEntry]:
        """Committed files of `table`, by date then batch; optionally dated first..last."""
        out = []
        stage = stage_of(table)
        if batches is not None and len(batches) <= _FEW_BATCHES:
            # A few named batches: their manifests alone, not every manifest of the stage.
            named = {b: self.commit_of(stage, b) for b in sorted(batches)}
            commits = {b: c for b, c in named.items() if c is not None}
        else:
            commits = self.commits(stage)
        for batch_id, commit in commits.items():
            if batch_id in exclude_batches or (batches is not None and batch_id not in batches):
                continue
            for entry in commit.of(table):
                day = entry.day
                if day is not None and (
                    (first is not None and day < first) or (last is not None and day > last)
                ):
                    continue
                out.append(entry)
        return sorted(out, key=lambda e: (e.date or "", e.path))

    def urls(
        self,
        table: str,
        first: dt.date | None = None,
        last: dt.date | None = None,
        for_spark: bool = False,
    ) -> list[str]:
        """Full URLs of the committed files: what Spark or any other engine should read.

        `for_spark` names S3 objects `s3a://`, the scheme of Hadoop's S3 connector.
        """
        out = []
        for entry in self.files(table, first, last):
            if entry.encrypted and for_spark:
                raise ValueError(f"{entry.path} is encrypted: Spark cannot read it")
            url = self.fs.unstrip_protocol(self.path(entry.path))
            if for_spark and url.startswith("s3://"):
                url = "s3a://" + url.removeprefix("s3://")
            out.append(url)
        return out

    def read_files(
        self, entries: list[FileEntry], columns: list[str] | None = None
    ) -> pl.DataFrame:
        frames = [self._read(entry, columns) for entry in entries]
        return pl.concat(frames, how="vertical") if frames else pl.DataFrame()

    def _read(self, entry: FileEntry, columns: list[str] | None = None) -> pl.DataFrame:
        path = self.path(entry.path)
        if entry.encrypted:
            data = restricted.decrypt(self.fs.cat_file(path), self.quarantine_key, path)
            return pl.read_parquet(io.BytesIO(data), columns=columns)
        if is_local(self.fs):
            return pl.read_parquet(path, columns=columns)
        with self.fs.open(path, "rb") as f:
            return pl.read_parquet(f, columns=columns)

    def _read_listed(
        self,
        list_files,  # noqa: ANN001 - () -> list[FileEntry]
        columns: list[str] | None = None,
    ) -> pl.DataFrame:
        """List then read; when a newer commit removed a listed file meanwhile, list again."""
        for attempt in range(READ_ATTEMPTS):
            entries = list_files()
            try:
                return self.read_files(entries, columns)
            except FileNotFoundError as e:
                if attempt == READ_ATTEMPTS - 1:
                    raise LakeReadError(
                        f"a committed file of the lake at {self.root} is missing: {e}"
                    ) from e
        raise AssertionError("unreachable")

    def read_by_date(
        self,
        table: str,
        first: dt.date,
        last: dt.date,
        exclude_batch: str | None = None,
        exclude_batches: Collection[str] = (),
        columns: list[str] | None = None,
    ) -> pl.DataFrame:
        """All batches' committed rows dated first..last; `exclude_batch(es)` skip some;
        `columns`: only these."""
        skip = {b for b in (*exclude_batches, exclude_batch) if b is not None}
        return self._read_listed(
            lambda: self.files(table, first, last, exclude_batches=skip), columns
        )

    def read_batch(
        self, table: str, batch_id: str, columns: list[str] | None = None
    ) -> pl.DataFrame:
        return self._read_listed(lambda: self.files(table, batches={batch_id}), columns)

    def read_table(self, table: str) -> pl.DataFrame:
        """Every committed row of a table (the restricted one needs its key if encrypted)."""
        return self._read_listed(lambda: self.files(table))

    def dates(self, table: str) -> list[dt.date]:
        """Transaction dates that have committed rows in `table`, oldest first."""
        return sorted({e.day for e in self.files(table) if e.day is not None and e.rows})


class CommitWriter:
    """The files of one new version of a batch's stage, until `Lake.commit` publishes them."""

    def __init__(self, lake: Lake, stage: str, batch_id: str, previous: Commit | None) -> None:
        self.lake, self.stage, self.batch_id = lake, stage, batch_id
        self.previous = previous
        self.commit_id = new_commit_id()
        self.files: list[FileEntry] = []
        self.written: list[FileEntry] = []  # by this writer (not kept from the previous one)
        self.meta: dict = dict(previous.meta) if previous else {}
        self.published: Commit | None = None
        self._count = 0
        self._lock = threading.Lock()

    def _name(self, table: str, day: str | None, encrypted: bool = False) -> str:
        folder = f"{table}/tx_date={day}" if day else table
        suffix = "parquet.fernet" if encrypted else "parquet"
        return f"{folder}/{self.batch_id}.{self.commit_id}.{suffix}"

    def _check(self, table: str) -> None:
        if table not in STAGES[self.stage]:
            raise ValueError(f"table {table!r} is not part of the {self.stage} stage")
        if self._count == 0:
            crash_if(self.stage, BEFORE_FIRST_FILE)

    def by_date(self, table: str, frame: pl.DataFrame) -> list[str]:
        """One file per transaction date of `frame` (none for an empty frame)."""
        self._check(table)
        parts = _by_date(frame) if frame.height else []
        entries = [
            FileEntry(table, self._name(table, day.isoformat()), part.height, day.isoformat())
            for day, part in parts
        ]
        # A monthly batch spans ~30 dates: write them side by side (Polars releases the GIL;
        # with 2 cores, 4 threads still gain: each file also waits on the file system).
        with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
            list(pool.map(self._write, entries, [part for _, part in parts]))
        self.files += entries
        return [self.lake.path(e.path) for e in entries]

    def whole(self, table: str, frame: pl.DataFrame, key: bytes | None = None) -> str:
        """The batch's rows of `table` as one file, encrypted with `key` when given."""
        self._check(table)
        entry = FileEntry(
            table, self._name(table, None, key is not None), frame.height, encrypted=key is not None
        )
        self._write(entry, frame, key)
        self.files.append(entry)
        return self.lake.path(entry.path)

    def quarantine(self, frame: pl.DataFrame) -> str:
        """The pseudonymised quarantine here, its raw lines in the restricted zone."""
        pseudonymised = frame.drop(RAW_LINE, strict=False)
        path = self.whole(QUARANTINE, pseudonymised)
        if RAW_LINE in frame.columns:
            lines = frame.select("batch_id", "line_no", RAW_LINE)
            self.whole(RESTRICTED_QUARANTINE, lines, self.lake.quarantine_key)
        return path

    def adopt(
        self, table: str, staged: str, rows: int, day: str | None = None, part: int = 0
    ) -> str:
        """Take a file another writer made (Spark's executors, in `lake/spark_staging.py`) into
        this commit: it is moved to a fresh name of the batch, which the commit then names.

        `part` orders a table's files of one date: readers concatenate them by name.
        """
        self._check(table)
        folder = f"{table}/tx_date={day}" if day else table
        entry = FileEntry(
            table, f"{folder}/{self.batch_id}.{self.commit_id}.{part:05d}.parquet", rows, day
        )
        target = self.lake.path(entry.path)
        with self._lock:
            first = self._count == 0
            self._count += 1
        self.written.append(entry)
        self.lake.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.lake.fs.mv(staged, target)
        if is_local(self.lake.fs):
            sync_file(target)
        if first:
            crash_if(self.stage, AFTER_FIRST_FILE)
        self.files.append(entry)
        return target

    def keep(self, table: str) -> None:
        """Carry the previous version's files of `table` into this one."""
        if self.previous is not None:
            self.files += self.previous.of(table)

    def _write(self, entry: FileEntry, frame: pl.DataFrame, key: bytes | None = None) -> None:
        with self._lock:
            first = self._count == 0
            self._count += 1
        self.written.append(entry)
        path = self.lake.path(entry.path)
        self.lake._write_parquet(path, frame, key, half=first and armed(self.stage, MID_FILE))  # noqa: SLF001
        if first:
            crash_if(self.stage, AFTER_FIRST_FILE)

    def discard(self) -> None:
        """Remove what this writer wrote (its commit failed); a crash leaves them to the next."""
        for entry in self.written:
            with contextlib.suppress(OSError):
                self.lake.fs.rm(self.lake.path(entry.path))


def _by_date(frame: pl.DataFrame) -> list[tuple[dt.date, pl.DataFrame]]:
    """The rows of each transaction date, in their order.

    A frame in time order (the feature table, most clean tables) is cut into zero-copy slices;
    any other is partitioned, which copies it.
    """
    dates = frame["tx_datetime"].dt.date()
    if not dates.is_sorted():
        dated = frame.with_columns(_date=dates)
        parts = dated.partition_by("_date", as_dict=True, maintain_order=True)
        return [(day, part.drop("_date")) for (day,), part in parts.items()]
    runs = dates.rle()
    out, offset = [], 0
    for day, length in zip(runs.struct.field("value"), runs.struct.field("len"), strict=True):
        out.append((day, frame.slice(offset, length)))
        offset += length
    return out
