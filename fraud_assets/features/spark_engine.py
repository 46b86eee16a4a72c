"""The feature definitions of `spec` computed with PySpark window frames, for data at scale.

Same arithmetic as the Polars engine: a customer window is "rows up to and including this one in
(time, id) order" minus "rows at or before t - w days", so ties inside one second are exact; a
terminal window is a RANGE frame on seconds. Nothing is collected to the driver.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window, WindowSpec
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType

from fraud_assets.features.spec import (
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)

_SATURDAY, _SUNDAY = 7, 1  # Spark's dayofweek: 1 = Sunday ... 7 = Saturday
_EPOCH_SATURDAY, _EPOCH_SUNDAY = 2, 3  # days since 1970-01-01 (a Thursday), modulo 7


def compute_features_spark(clean: DataFrame) -> DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs).

    Returns the input columns unchanged plus every column of `spec.FEATURE_COLUMNS`.
    """
    frame = clean.withColumns(_calendar_features(clean))
    frame = _terminal_windows(_customer_windows(frame))
    return frame.withColumn(
        "customer_amount_ratio_30d",
        _ieee_divide(F.col("tx_amount"), F.col("customer_avg_amount_30d")),
    )


def _calendar_features(clean: DataFrame) -> dict[str, Column]:
    """Weekend and night flags of the naive wall-clock `tx_datetime`, whatever the time zones.

    A zoned TIMESTAMP input is read as the naive time in UTC, the session zone the data is loaded
    under; TIMESTAMP_NTZ (what Spark infers for Polars' naive Parquet datetimes) needs no zone.
    """
    stamp = F.col("tx_datetime")
    if isinstance(clean.schema["tx_datetime"].dataType, TimestampNTZType):
        # An NTZ value is the wall clock itself, so hour/weekday cannot move with any time zone.
        hour, weekend = F.hour(stamp), F.dayofweek(stamp).isin(_SATURDAY, _SUNDAY)
    else:
        # hour()/dayofweek() of a TIMESTAMP follow the session zone: read epoch seconds in UTC.
        seconds = F.unix_seconds(stamp)
        hour = F.floor(F.pmod(seconds, F.lit(SECONDS_PER_DAY)) / 3600)
        day = F.floor(seconds / SECONDS_PER_DAY)
        weekend = F.pmod(day, F.lit(7)).isin(_EPOCH_SATURDAY, _EPOCH_SUNDAY)
    return {
        "tx_during_weekend": weekend.cast("int"),
        "tx_during_night": (hour <= NIGHT_LAST_HOUR).cast("int"),
    }


def _by_time(entity: str) -> WindowSpec:
    """An entity's rows ordered by seconds alone: what a RANGE frame on seconds needs."""
    return Window.partitionBy(entity).orderBy("tx_time_seconds")


def _customer_windows(frame: DataFrame) -> DataFrame:
    """Count and mean amount of the customer's rows in (t - w days, t], current row included."""
    # ROWS frame in (time, id) order: the current row and its same-second predecessors only.
    upto_current = (
        Window.partitionBy("customer_id")
        .orderBy("tx_time_seconds", "transaction_id")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # RANGE frame: every row at or before t - w days, whatever its id; these left the window.
    expired = {
        w: _by_time("customer_id").rangeBetween(Window.unboundedPreceding, -w * SECONDS_PER_DAY)
        for w in WINDOWS_DAYS
    }
    counts = {
        f"customer_nb_tx_{w}d": F.count(F.lit(1)).over(upto_current)
        - F.count(F.lit(1)).over(expired[w])
        for w in WINDOWS_DAYS
    }
    amount_so_far = F.sum("tx_amount").over(upto_current)
    means = {
        f"customer_avg_amount_{w}d": (
            amount_so_far - F.coalesce(F.sum("tx_amount").over(expired[w]), F.lit(0.0))
        )
        / F.col(f"customer_nb_tx_{w}d")  # >= 1: the current row is in
        for w in WINDOWS_DAYS
    }
    return frame.withColumns(counts).withColumns(means)


def _terminal_windows(frame: DataFrame) -> DataFrame:
    """Count and fraud share of the terminal's rows in (t - (d+w) days, t - d days]."""
    end = -LABEL_DELAY_DAYS * SECONDS_PER_DAY
    # Frame bounds are inclusive whole seconds, hence the +1 for the open lower end.
    window = {
        w: _by_time("terminal_id").rangeBetween(end - w * SECONDS_PER_DAY + 1, end)
        for w in WINDOWS_DAYS
    }
    counts = {f"terminal_nb_tx_{w}d": F.count(F.lit(1)).over(window[w]) for w in WINDOWS_DAYS}
    risks = {}
    for w in WINDOWS_DAYS:
        count = F.col(f"terminal_nb_tx_{w}d")
        frauds = F.sum(F.col("tx_fraud").cast("long")).over(window[w])
        risks[f"terminal_risk_{w}d"] = F.when(count > 0, frauds / count).otherwise(F.lit(0.0))
    return frame.withColumns(counts).withColumns(risks)


def _ieee_divide(numerator: Column, denominator: Column) -> Column:
    """x / y as numpy and Polars give it (inf or NaN for y == 0), where ANSI Spark would raise."""
    by_zero = (
        F.when(numerator > 0, F.lit(float("inf")))
        .when(numerator < 0, F.lit(float("-inf")))
        .otherwise(F.lit(float("nan")))
    )
    return F.when(denominator == 0, by_zero).otherwise(numerator / denominator)


def read_committed(spark: SparkSession, urls: list[str]) -> DataFrame:
    """The lake's committed files (`Lake.urls(..., for_spark=True)`), never a folder glob: a
    folder also holds files of crashed or superseded writes that no commit names."""
    frame = spark.read.parquet(*urls)
    # Spark adds the folder's `tx_date=` as a column when it discovers partitions: not ours.
    return frame.drop("tx_date") if "tx_date" in frame.columns else frame
