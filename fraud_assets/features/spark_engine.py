"""The feature definitions of `spec` on Spark: one partitioning per entity, one ordered pass.

Used for rows Spark gets from the driver (`pipeline.features_for_batches` with a lake in memory);
a lake the executors reach is featurised by time slices instead (batch/spark_features.py), with
no shuffle at all.

The rows are hash-partitioned by customer and sorted by (time, id) inside each partition; each
partition is then scanned once by the default engine's compiled scan (`windows.customer_windows`),
every window and the card's earlier outliers in the same pass, inside `mapInArrow`. The same
again by terminal, which also adds the terminal's fraud-run features (in the same compiled
terminal scan), the calendar flags and the amount ratios. So there is no sort per window,
and the arithmetic is the default engine's own (exact window sums: the same bits whatever
rows share a partition). A partition must hold all rows of its entities, so partitions are
sized to fit an executor (`partitions`, default: Spark's shuffle partitions). Nothing is
collected to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DoubleType,
    LongType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from fraud_assets.features.spec import (
    CALENDAR_FEATURES,
    CARD_HISTORY_FEATURES,
    COUNT_FEATURES,
    CUSTOMER_FEATURES,
    FEATURE_COLUMNS,
    NIGHT_LAST_HOUR,
    OWN_RATIO_WINDOW_DAYS,
    RATIO_WINDOWS_DAYS,
    TERMINAL_FEATURES,
    TERMINAL_RUN_FEATURES,
)
from fraud_assets.features.windows import (
    customer_windows,
    terminal_run_min_ratio,
    terminal_windows,
)
from fraud_assets.spark.arrow import partition_frame

_ORDER = ("tx_time_seconds", "transaction_id")
_CUSTOMER_PASS = CUSTOMER_FEATURES + CARD_HISTORY_FEATURES  # all from the card's own rows


def _feature_type(name: str):  # noqa: ANN202 - a Spark DataType
    if name in CALENDAR_FEATURES:
        return ByteType()
    return LongType() if name in COUNT_FEATURES else DoubleType()


def compute_features_spark(
    clean: DataFrame,
    partitions: int | None = None,
    inspect: Callable[[pl.DataFrame], None] | None = None,
) -> DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs).

    Returns the input columns unchanged plus every column of `spec.FEATURE_COLUMNS`, in the
    default engine's column order and types; rows in no particular order. `inspect`, when
    given, is called on the executors with each partition's finished rows (in the returned
    types), e.g. to check them without reading them again.
    """
    spark = clean.sparkSession
    shuffle = int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
    count = max(partitions or 1, shuffle)
    if isinstance(clean.schema["tx_datetime"].dataType, TimestampType):
        # A zoned timestamp is read as the wall clock in UTC, the session's zone.
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        clean = clean.withColumn("tx_datetime", F.col("tx_datetime").cast(TimestampNTZType()))
    base = list(clean.schema.fields)
    customer_schema = StructType(base + [StructField(n, _feature_type(n)) for n in _CUSTOMER_PASS])
    inputs = [f.name for f in base]
    # An input that is also a feature (`tx_amount`) stays where it is, as in the default engine.
    names = inputs + [n for n in FEATURE_COLUMNS if n not in inputs]
    types = {f.name: f.dataType for f in customer_schema.fields}
    out_schema = StructType([StructField(n, types.get(n) or _feature_type(n)) for n in names])
    customers = (
        clean.repartition(count, "customer_id")
        .sortWithinPartitions(*_ORDER)
        .mapInArrow(_scan(_customer_pass, customer_schema), customer_schema)
    )
    return (
        customers.repartition(count, "terminal_id")
        .sortWithinPartitions(*_ORDER)
        .mapInArrow(_scan(_terminal_pass, out_schema, inspect), out_schema)
    )


def _arrow_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema)


def _scan(
    compute: Callable[[pl.DataFrame], pl.DataFrame],
    schema: StructType,
    inspect: Callable[[pl.DataFrame], None] | None = None,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function: the whole partition (in (time, id) order) through `compute`."""
    target = _arrow_schema(schema)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = partition_frame(batches)
        if frame is None:
            return
        out = compute(frame).select(target.names).to_arrow().cast(target)  # type: ignore[arg-type]
        del frame
        if inspect is not None:
            inspect(pl.from_arrow(out))  # type: ignore[arg-type]
        yield from out.to_batches(max_chunksize=100_000)

    return run


def _customer_pass(frame: pl.DataFrame) -> pl.DataFrame:
    columns = customer_windows(frame)
    return frame.with_columns(**{name: columns[name] for name in _CUSTOMER_PASS})


def _terminal_pass(frame: pl.DataFrame) -> pl.DataFrame:
    """Terminal windows and runs, then what `polars_engine.compute_features` adds row by row.

    The partition holds every row of its terminals, so the default engine's fraud runs (per
    terminal, in `terminal_windows`) are computed here as they are in process.
    """
    columns = terminal_windows(frame)
    mean = frame[f"customer_avg_amount_{OWN_RATIO_WINDOW_DAYS}d"].to_numpy()  # customer pass
    columns["terminal_fraud_run_min_ratio"] = terminal_run_min_ratio(frame, mean)
    return frame.with_columns(
        tx_during_weekend=(pl.col("tx_datetime").dt.weekday() >= 6).cast(pl.Int8),
        tx_during_night=(pl.col("tx_datetime").dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8),
        **{name: columns[name] for name in TERMINAL_FEATURES},
    ).with_columns(
        **{
            f"customer_amount_ratio_{w}d": pl.col("tx_amount") / pl.col(f"customer_avg_amount_{w}d")
            for w in RATIO_WINDOWS_DAYS
        },
        **{name: columns[name] for name in TERMINAL_RUN_FEATURES},
    )


def read_committed(spark: SparkSession, urls: list[str]) -> DataFrame:
    """The lake's committed files (`Lake.urls(..., for_spark=True)`), never a folder glob: a
    folder also holds files of crashed or superseded writes that no commit names."""
    frame = spark.read.parquet(*urls)
    # Spark adds the folder's `tx_date=` as a column when it discovers partitions: not ours.
    return frame.drop("tx_date") if "tx_date" in frame.columns else frame
