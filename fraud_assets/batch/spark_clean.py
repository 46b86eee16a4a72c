"""Clean one raw batch on Spark, with the default engine's outcome row for row (`engine.py`).

First by byte ranges (`spark_ranges.py`): each task reads its range of the raw file from the
landing zone and runs the default engine's parser, rules, de-duplication, time repair and
pseudonyms on it, then writes its clean rows and quarantine; no row is shuffled. When the ranges
cannot be cleaned apart (their ids overlap: an id may repeat across ranges, or the file is not
in id order; or the restricted zone is encrypted), the row plan below does it:

Executors read the raw file from the landing zone (Spark's text source, in blocks) and parse
each block with the default engine's general parser (`parsing.parse_text_lines`) and row rules
(`rules.RowRules`) inside `mapInArrow`: every defect class gets the same verdict and reason,
and ids are pseudonymised there. Duplicates (first line wins), cross-batch duplicate ids (a join
with the ids other batches committed, read by executors), the time repair and the writes are
Spark plans; executors write the lake's files and the driver commits them
(`lake/spark_staging.py`). The driver holds the plan and small results only: lines per block,
counts per reason, the repaired counters, the commit.

A line's number: Spark reads a file in blocks, and a block's rows come in file order, so line
number = 1 + lines of the earlier blocks + the row's place in its block.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fraud_assets.cleaning.engine import (
    CLEAN_SCHEMA,
    QUARANTINE_SCHEMA,
    SECONDS_PER_DAY,
    CleaningConfig,
)
from fraud_assets.cleaning.parsing import check_header, parse_text_lines
from fraud_assets.cleaning.rules import RowRules, Rule
from fraud_assets.lake import CLEAN, QUARANTINE, RESTRICTED_QUARANTINE, BatchCoverage, Lake
from fraud_assets.lake.spark_staging import (
    adopt_all,
    spark_url,
    staged_files,
    staging_folder,
    sweep,
    write_staged,
    write_staged_by,
)
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.spark.session import cores

ROWS_PER_FILE = 2_000_000  # clean rows per task (and per file of a date) when writing
ROWS_PER_TASK = 500_000  # below this many rows per core, fewer tasks (and files of a date)
_DROPPED = "__duplicate__"  # the verdict of a repeated line: counted, not quarantined

_TYPED = [
    ("transaction_id", pa.int64()),
    ("tx_datetime", pa.timestamp("us")),
    ("customer_id", pa.int64()),
    ("terminal_id", pa.int64()),
    ("tx_amount", pa.float64()),
    ("tx_time_seconds", pa.int64()),
    ("tx_time_days", pa.int64()),
    ("tx_fraud", pa.int8()),
    ("tx_fraud_scenario", pa.int8()),
]
PARSED = pa.schema(
    [
        ("line_no", pa.int64()),
        ("reason", pa.string()),
        ("line", pa.string()),
        ("hour_24", pa.bool_()),
        *_TYPED,
    ]
)
_PARSED_DDL = (
    "line_no long, reason string, line string, hour_24 boolean, transaction_id long, "
    "tx_datetime timestamp_ntz, customer_id long, terminal_id long, tx_amount double, "
    "tx_time_seconds long, tx_time_days long, tx_fraud byte, tx_fraud_scenario byte"
)


@dataclass
class SparkCleanResult:
    """What `CleanResult` says about a batch, without its rows (they are in the lake)."""

    batch_id: str
    raw_rows: int
    clean_rows: int
    quarantined: int
    duplicates: int
    origin: dt.date
    first: dt.date
    last: dt.date
    repaired: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    clean_schema: list[str] = field(default_factory=list)
    quarantine_schema: list[str] = field(default_factory=list)

    @property
    def conserved(self) -> bool:
        return self.raw_rows == self.clean_rows + self.quarantined + self.duplicates


@dataclass(frozen=True)
class _ParseSettings:
    """What each task needs to parse and judge lines (pickled into the task, not the plan)."""

    max_amount: float
    max_terminal_id: int
    period: object
    key: bytes
    terminals: object = None  # a broadcast of the registry's ids, or the array itself

    def rules(self) -> RowRules:
        terminals = getattr(self.terminals, "value", self.terminals)
        return RowRules(
            max_amount=self.max_amount,
            max_terminal_id=self.max_terminal_id,
            terminals=terminals,
            period=self.period,  # type: ignore[arg-type]
        )


def first_line(stream) -> bytes:  # noqa: ANN001 - a binary file object
    """The raw file's first line (what the header check needs), read without the rest."""
    out = b""
    while b"\n" not in out:
        chunk = stream.read(4096)
        if not chunk:
            break
        out += chunk
    return out.split(b"\n", 1)[0]


def clean_batch_spark(
    spark: SparkSession,
    lake: Lake,
    raw_url: str,
    header: bytes,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    config: CleaningConfig,
    name: str | None = None,
    raw_fs: Any = None,
) -> SparkCleanResult:
    """Clean the raw file at `raw_url` (a URL Spark reads: file:, s3a:, hdfs:) into the lake.

    `header` is the file's first line (`first_line`). `raw_fs`: the landing zone's fsspec file
    system (endpoint, credentials), which the executors read the byte ranges with. Raises
    RawBatchError for a wrong header before any Spark work; the lake keeps its previous version
    of the batch on any failure.
    """
    name = name or raw_url
    check_header(header, name, empty_file=header == b"")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    from fraud_assets.batch.spark_ranges import clean_by_ranges

    done = clean_by_ranges(
        spark, lake, raw_url, header, batch_id, pseudonymizer, config, cores(spark), raw_fs=raw_fs
    )
    if done is not None:
        return SparkCleanResult(**done)
    return _clean_by_rows(spark, lake, raw_url, batch_id, pseudonymizer, config, name)


def _clean_by_rows(
    spark: SparkSession,
    lake: Lake,
    raw_url: str,
    batch_id: str,
    pseudonymizer: Pseudonymizer,
    config: CleaningConfig,
    name: str,
) -> SparkCleanResult:
    """The general plan: Spark's text source, rows shuffled by id for the duplicates."""
    text = spark.read.option("lineSep", "\n").text(raw_url)
    located = text.select(
        F.input_file_block_start().alias("block"),
        F.monotonically_increasing_id().alias("idx"),
        F.col("value").cast("binary").alias("value"),
    )
    blocks = sorted(
        located.groupBy("block").agg(F.count("*").alias("n"), F.min("idx").alias("first")).collect()
    )
    if not blocks:  # the header check read a line, so this is a file that changed meanwhile
        check_header(b"", name, empty_file=True)
    lines_total = sum(b["n"] for b in blocks)
    raw_rows = lines_total - 1
    base, before = [], 0
    for block in blocks:
        base += [F.lit(block["block"]), F.lit(1 + before - block["first"])]
        before += block["n"]
    numbered = located.select(
        (F.col("idx") + F.element_at(F.create_map(*base), F.col("block"))).alias("line_no"),
        "value",
    ).where(F.col("line_no") > 1)

    settings = _settings(spark, config, pseudonymizer)
    # The parsed lines are read four times (verdict counts, range sample, write, quarantine):
    # kept on the executors' disks, written as they are made. MEMORY_AND_DISK first unrolls a
    # partition in the heap, which ran a 1 GB local[2] driver out of memory on a 47 M-row batch.
    parsed = numbered.mapInArrow(_parser(settings), _PARSED_DDL).persist(StorageLevel.DISK_ONLY)
    try:
        return _finish(spark, lake, parsed, numbered, batch_id, raw_rows, config)
    finally:
        parsed.unpersist()
        if hasattr(settings.terminals, "destroy"):  # this batch's broadcast: not kept
            settings.terminals.destroy()


def _settings(
    spark: SparkSession, config: CleaningConfig, pseudonymizer: Pseudonymizer
) -> _ParseSettings:
    terminals = config.terminals
    if terminals is not None and hasattr(spark, "sparkContext"):
        try:
            terminals = spark.sparkContext.broadcast(np.asarray(terminals))
        except Exception:  # noqa: BLE001 - Spark Connect has no broadcast: ship the array
            terminals = config.terminals
    return _ParseSettings(
        max_amount=config.max_amount,
        max_terminal_id=config.max_terminal_id,
        period=config.period,
        key=pseudonymizer._key,  # noqa: SLF001 - executors pseudonymise with the same key
        terminals=terminals,
    )


def _finish(
    spark: SparkSession,
    lake: Lake,
    parsed: DataFrame,
    numbered: DataFrame,
    batch_id: str,
    raw_rows: int,
    config: CleaningConfig,
) -> SparkCleanResult:
    # One pass over the parsed lines: parser and rule verdicts, and the good rows' id range.
    found = (
        parsed.groupBy("reason")
        .agg(
            F.count("*").alias("n"),
            F.min("transaction_id").alias("low"),
            F.max("transaction_id").alias("high"),
        )
        .collect()
    )
    counts = {r["reason"]: r["n"] for r in found if r["reason"] is not None}
    good_range = next(((r["low"], r["high"]) for r in found if r["reason"] is None), None)
    judged = _committed_elsewhere(spark, lake, parsed, batch_id, good_range)
    good = judged.where(F.col("reason").isNull() | (F.col("reason") == Rule.DUPLICATE_ID.value))
    first_seen = Window.partitionBy("transaction_id").orderBy("line_no")
    verdicts = good.repartitionByRange(_partitions(spark, raw_rows), "transaction_id").withColumn(
        "reason",
        F.when(
            F.col("reason").isNull() & (F.row_number().over(first_seen) > 1), F.lit(_DROPPED)
        ).otherwise(F.col("reason")),
    )
    unique = verdicts.where(F.col("reason").isNull())
    origin = config.origin_date or _infer_origin(unique)
    clean = _repair_time(verdicts, origin, batch_id)
    result = _commit(lake, batch_id, clean, judged, numbered, counts, config, origin, raw_rows)
    return result


def _partitions(spark: SparkSession, rows: int) -> int:
    """Tasks that judge duplicates and write the clean rows: files of at most ROWS_PER_FILE
    rows, and every core busy once there are ROWS_PER_TASK rows for each (rows=0: the cores)."""
    slots = cores(spark)
    if rows == 0:
        return slots
    return max(1, -(-rows // ROWS_PER_FILE), min(slots, rows // ROWS_PER_TASK))


def _committed_elsewhere(
    spark: SparkSession,
    lake: Lake,
    parsed: DataFrame,
    batch_id: str,
    good_range: tuple[int, int] | None,
) -> DataFrame:
    """`duplicate_id` for good rows whose id another batch has committed: executors read the
    other batches' committed ids (only row groups within this batch's id range)."""
    others = [
        spark_url(lake, lake.path(entry.path))
        for entry in lake.files(CLEAN, exclude_batches={batch_id})
    ]
    if not others or good_range is None:
        return parsed
    ids = (
        spark.read.parquet(*others)
        .select("transaction_id")
        .where(F.col("transaction_id").between(*good_range))
        .distinct()
        .withColumn("_elsewhere", F.lit(True))
    )
    joined = parsed.join(ids, on="transaction_id", how="left")
    taken = F.col("reason").isNull() & F.col("_elsewhere").isNotNull()
    return joined.withColumn(
        "reason", F.when(taken, F.lit(Rule.DUPLICATE_ID.value)).otherwise(F.col("reason"))
    ).drop("_elsewhere")


def _infer_origin(unique: DataFrame) -> dt.date:
    """The most common (timestamp - seconds) day, the earliest among equals (engine.py)."""
    day = F.floor((_epoch_seconds("tx_datetime") - F.col("tx_time_seconds")) / SECONDS_PER_DAY)
    rows = unique.groupBy(day.alias("day")).agg(F.count("*").alias("n")).collect()
    if not rows:
        return dt.date(1970, 1, 1)
    best = min(rows, key=lambda r: (-r["n"], r["day"]))
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(best["day"]))


def _epoch_seconds(column: str):  # noqa: ANN202 - a Column
    """Seconds of a naive (wall-clock) timestamp since 1970-01-01 00:00, read in UTC."""
    return F.unix_seconds(F.to_utc_timestamp(F.col(column).cast("timestamp"), "UTC"))


def _repair_time(verdicts: DataFrame, origin: dt.date, batch_id: str) -> DataFrame:
    """Seconds and days recomputed from the timestamp against the origin: the clean table's
    columns, plus `reason` and what `_observed` counts."""
    origin_seconds = (origin - dt.date(1970, 1, 1)).days * SECONDS_PER_DAY
    seconds = (_epoch_seconds("tx_datetime") - F.lit(origin_seconds)).cast("long")
    days = ((seconds - F.pmod(seconds, F.lit(SECONDS_PER_DAY))) / F.lit(SECONDS_PER_DAY)).cast(
        "long"
    )
    fixed = verdicts.withColumns({"new_seconds": seconds, "new_days": days})
    clean = fixed.select(
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
        F.col("new_seconds").alias("tx_time_seconds"),
        F.col("new_days").alias("tx_time_days"),
        "tx_fraud",
        "tx_fraud_scenario",
        F.lit(batch_id).alias("batch_id"),
        "reason",
        F.col("hour_24").cast("long").alias("_hour_24"),
        (F.col("new_seconds") != F.col("tx_time_seconds")).cast("long").alias("_seconds"),
        (F.col("new_days") != F.col("tx_time_days")).cast("long").alias("_days"),
    )
    return clean


def _quarantine(judged: DataFrame, numbered: DataFrame, batch_id: str, taken: int) -> DataFrame:
    """batch_id, line_no, line, reason of every quarantined line, in line order."""
    rows = judged.where(F.col("reason").isNotNull()).select("line_no", "line", "reason")
    if taken:  # `duplicate_id` rows parsed well, so their text was not kept: read it again
        text = numbered.select(
            "line_no",
            F.regexp_replace(F.col("value").cast("string"), "\r$", "").alias("_text"),
        )
        rows = (
            rows.join(text, on="line_no", how="left")
            .withColumn("line", F.coalesce("line", "_text"))
            .drop("_text")
        )
    return rows.select(F.lit(batch_id).alias("batch_id"), "line_no", "line", "reason")


REPAIRED = ("hour_24", "tx_time_days", "tx_time_seconds")


def _commit(
    lake: Lake,
    batch_id: str,
    clean: DataFrame,
    judged: DataFrame,
    numbered: DataFrame,
    counts: dict[str, int],
    config: CleaningConfig,
    origin: dt.date,
    raw_rows: int,
) -> SparkCleanResult:
    """Write the clean rows (`clean` with its `reason` column) and the quarantine, and commit.

    What became of the good rows (kept, duplicate of another batch, repeated line), the repaired
    counters, the dates and the content digest are observed while the clean rows are written:
    no separate pass."""
    from pyspark.sql import Observation

    from fraud_assets.batch.schemas import clean_transactions_schema
    from fraud_assets.batch.spark_checks import spark_failures, summarise

    spark = clean.sparkSession
    sweep(lake, CLEAN, batch_id)
    observation = Observation(f"clean-{batch_id}-{secrets.token_hex(4)}")
    observed = clean.observe(observation, *_observed())
    rows = observed.where(F.col("reason").isNull()).select(*CLEAN_SCHEMA)
    with lake.commit(CLEAN, batch_id) as commit:
        folder = staging_folder(lake, commit)
        dated = rows.withColumn("tx_date", F.to_date("tx_datetime"))
        schema = clean_transactions_schema(config.max_amount, config.period)
        reports = _accumulator(spark)
        staged = write_staged_by(
            dated,
            lake,
            f"{folder}/clean",
            ["tx_date"],
            ["transaction_id"],
            _checker(reports, schema) if reports is not None else None,
        )
        seen = dict(observation.get)
        for day in ("first", "last"):
            if seen[day] is not None:
                seen[day] = dt.date(1970, 1, 1) + dt.timedelta(days=int(seen[day]))
        if seen["taken"]:
            counts[Rule.DUPLICATE_ID.value] = seen["taken"]
        duplicates = seen["dropped"]
        kept = seen if seen["rows"] else None
        quarantined = sum(counts.values())
        made = seen["rows"]
        staged_rows = sum(f.rows for f in staged)
        if made != staged_rows:  # a bug: the commit is not published
            raise AssertionError(f"{batch_id}: {staged_rows} clean rows written, {made} made")
        if reports is not None:  # checked by the tasks that wrote the rows
            clean_schema = summarise([r for found in reports.value.values() for r in found])
            clean_schema = clean_schema.get(None, [])
        elif staged_rows:  # Spark Connect: read back from the staged files
            written = spark.read.parquet(*(spark_url(lake, f.path) for f in staged))
            clean_schema = spark_failures(schema, written.drop("tx_date"))
        else:
            clean_schema = []
        clean_rows = adopt_all(commit, CLEAN, staged, by_date=True)
        quarantine = _quarantine(judged, numbered, batch_id, counts.get(Rule.DUPLICATE_ID.value, 0))
        q_schema = _commit_quarantine(lake, commit, quarantine, quarantined, folder)
        first, last = _coverage(config, kept, batch_id)
        commit.meta["coverage"] = asdict(
            BatchCoverage(
                batch_id,
                first.isoformat(),
                last.isoformat(),
                clean_rows,
                origin.isoformat(),
                content=_content_digest(kept),
            )
        )
    sweep(lake, CLEAN, batch_id)
    return SparkCleanResult(
        batch_id=batch_id,
        raw_rows=raw_rows,
        clean_rows=clean_rows,
        quarantined=quarantined,
        duplicates=duplicates,
        origin=origin,
        first=first,
        last=last,
        repaired={k: int(kept[k] or 0) if kept is not None else 0 for k in REPAIRED},
        by_reason=dict(sorted(counts.items())),
        clean_schema=clean_schema,
        quarantine_schema=q_schema,
    )


def _accumulator(spark: SparkSession):  # noqa: ANN202 - an Accumulator, None on Spark Connect
    from fraud_assets.batch.spark_checks import PartitionFailures

    try:
        return spark.sparkContext.accumulator({}, PartitionFailures())
    except Exception:  # noqa: BLE001 - Spark Connect has no accumulators
        return None


def _checker(reports, schema):  # noqa: ANN001, ANN202 - the writing tasks' inspect function
    """Each writing task checks the clean rows it wrote (`schemas.find_failures`) and reports
    the failure rows under its partition."""
    from fraud_assets.batch.spark_checks import failure_rows

    def check(frame: pl.DataFrame) -> None:
        from pyspark import TaskContext

        reports.add({TaskContext.get().partitionId(): failure_rows(schema, frame, None)})

    return check


def _observed() -> list:
    """What the clean write observes, as one row of metrics: of the kept rows (`reason` null)
    their number, the repaired counters, first and last dates (days since 1970) and the content
    digest's sums; the rows of the two other fates of a good row."""
    reason = F.col("reason")

    def kept(column):  # noqa: ANN001, ANN202 - a Column
        return F.when(reason.isNull(), column)

    row = F.xxhash64(*[F.col(c) for c in CLEAN_SCHEMA])
    return [
        F.count(kept(F.lit(1))).alias("rows"),
        F.sum(kept(F.col("_hour_24"))).alias("hour_24"),
        F.sum(kept(F.col("_seconds"))).alias("tx_time_seconds"),
        F.sum(kept(F.col("_days"))).alias("tx_time_days"),
        F.min(kept(F.unix_date(F.to_date("tx_datetime")))).alias("first"),
        F.max(kept(F.unix_date(F.to_date("tx_datetime")))).alias("last"),
        F.sum(kept(row.cast("decimal(38,0)"))).alias("hash_sum"),
        F.bit_xor(kept(row)).alias("hash_xor"),
        F.count(F.when(reason == Rule.DUPLICATE_ID.value, 1)).alias("taken"),
        F.count(F.when(reason == _DROPPED, 1)).alias("dropped"),
    ]


def _coverage(config: CleaningConfig, sums, batch_id: str) -> tuple[dt.date, dt.date]:  # noqa: ANN001
    if config.period is not None:
        return config.period.first, config.period.last
    if sums is None or sums["first"] is None:
        day = dt.date.fromisoformat(batch_id)
        return day, day
    return sums["first"], sums["last"]


def _commit_quarantine(
    lake: Lake,
    commit,
    quarantine: DataFrame,
    rows: int,
    folder: str,  # noqa: ANN001
) -> list[str]:
    """The pseudonymised quarantine and its raw lines (restricted zone), one file each."""
    from fraud_assets.batch.schemas import QuarantinedTransactions
    from fraud_assets.batch.spark_checks import spark_failures

    if rows == 0 or lake.quarantine_key is not None:
        # An empty quarantine is still a file; an encrypted restricted zone is written by the
        # driver (Spark's writers cannot encrypt): quarantines are small, unlike clean tables.
        frame = (
            pl.from_arrow(quarantine.toArrow()).cast(QUARANTINE_SCHEMA).sort("line_no")
            if rows
            else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
        commit.quarantine(frame)
        from fraud_assets.batch.schemas import failures

        return failures(QuarantinedTransactions, frame)
    one = quarantine.repartition(1).sortWithinPartitions("line_no").persist()
    try:
        write_staged(one.select("batch_id", "line_no", "reason"), lake, f"{folder}/quarantine")
        write_staged(one.select("batch_id", "line_no", "line"), lake, f"{folder}/restricted")
        adopt_all(commit, QUARANTINE, staged_files(lake, f"{folder}/quarantine"), by_date=False)
        adopt_all(commit, RESTRICTED_QUARANTINE, staged_files(lake, f"{folder}/restricted"), False)
        return spark_failures(QuarantinedTransactions, one)
    finally:
        one.unpersist()


def _content_digest(kept) -> str:  # noqa: ANN001 - the clean rows' summary Row, or None
    """Equal clean tables, equal digests: an order-free sum of row hashes (executors compute it
    with the other aggregates); the default engine's digest is another function of the rows."""
    digest = hashlib.sha256(b"spark-content-1:" + repr(list(CLEAN_SCHEMA.items())).encode())
    if kept is not None:
        digest.update(f"{kept['rows']}:{kept['hash_sum']}:{kept['hash_xor']}".encode())
    return digest.hexdigest()[:24]


# -- executors ------------------------------------------------------------------------------------


def _parser(settings: _ParseSettings):  # noqa: ANN202 - the mapInArrow function
    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rules = settings.rules()
        pseudonymizer = Pseudonymizer(settings.key)
        for batch in batches:
            yield from parse_block(batch, rules, pseudonymizer).to_batches()

    return parse


def _texts(values: pa.Array) -> pl.Series:
    """Raw line bytes as text, bytes that are not UTF-8 escaped (as the default engine does);
    one trailing '\\r' is not part of the line."""
    try:
        text = pl.Series("line", values.cast(pa.string()))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        text = pl.Series(
            "line",
            [v.decode("utf-8", "backslashreplace") for v in values.to_pylist()],
            dtype=pl.String,
        )
    return text.str.strip_suffix("\r")


def parse_block(batch: pa.RecordBatch, rules: RowRules, pseudonymizer: Pseudonymizer) -> pa.Table:
    """(line_no, value) -> PARSED: the general parser's verdict, then the row rules (all but the
    cross-batch one), then pseudonyms for the rows that stay."""
    line_no = pl.Series("line_no", batch.column(0)).cast(pl.Int64)
    lines = pl.DataFrame([line_no, _texts(batch.column(1))])
    parsed = parse_text_lines(lines.lazy(), rules.terminal_bound).collect()
    parsed = parsed.with_columns(line=lines["line"])
    well_formed = parsed.filter(pl.col("reason").is_null())
    reasons = rules.reasons(well_formed)
    if reasons is not None:
        well_formed = well_formed.with_columns(reason=reasons)
    kept = well_formed.filter(pl.col("reason").is_null())
    kept = kept.with_columns(
        customer_id=pseudonymizer.column(kept["customer_id"], "customer"),
        terminal_id=pseudonymizer.column(kept["terminal_id"], "terminal"),
        line=pl.lit(None, pl.String),
    )
    refused = pl.concat(
        [
            parsed.filter(pl.col("reason").is_not_null()),
            well_formed.filter(pl.col("reason").is_not_null()),
        ],
        how="vertical_relaxed",
    ).select("line_no", "reason", "line")
    out = pl.concat([kept.select(PARSED.names), refused], how="diagonal_relaxed")
    return out.select(PARSED.names).to_arrow().cast(PARSED)
