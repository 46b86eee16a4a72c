"""The Spark engine computes the same features as the Polars engine, edge cases included."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from pyspark.sql import DataFrame, SparkSession

from fraud_assets.batch.pipeline import clean_into_lake, features_for_batch
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spark_engine import compute_features_spark
from fraud_assets.features.spec import (
    FEATURE_COLUMNS,
    LABEL_DELAY_DAYS,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.simulation import SimulationParams, TransactionSimulator
from tests.support import write_days

pytestmark = pytest.mark.spark

PARAMS = SimulationParams(customers=300, terminals=150, days=45, seed=11)
EDGE_CUSTOMER, EDGE_TERMINAL, OTHER_TERMINAL = 1_000_001, 1_000_001, 1_000_002
FIRST_EDGE_ID = 10_000_000
T0 = 40 * SECONDS_PER_DAY + 12 * 3600  # day 40 at noon, seconds since the simulation's origin
REL_TOL = 1e-9


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A small local Spark with the platform's settings: 2 cores, few shuffle partitions, UTC."""
    from fraud_assets.spark.session import start_spark

    session = start_spark(
        "local[2]",
        {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"},
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def _edge_rows() -> pl.DataFrame:
    """Rows that sit exactly on window edges (expected values in `test_window_edges_...`).

    Customer EDGE_CUSTOMER: two transactions in the same second at T0 (listed highest id first),
    one exactly 1, 7 and 30 days before T0 (outside), one 1 day minus 1 second before (inside).
    Terminal EDGE_TERMINAL, seen from T0 with the label delay d: rows exactly at T0 - d (inside),
    1 s later (outside), and at T0 - (d+w) for w in 1 and 7 and 30 (outside) or 1 s later (inside).
    """
    d, day = LABEL_DELAY_DAYS, SECONDS_PER_DAY
    # (id offset, customer, terminal, seconds, amount, fraud)
    rows = [
        (1, EDGE_CUSTOMER, EDGE_TERMINAL, T0, 20.0, 0),
        (0, EDGE_CUSTOMER, EDGE_TERMINAL, T0, 10.0, 0),
        (2, EDGE_CUSTOMER, OTHER_TERMINAL, T0 - 1 * day, 1000.0, 0),
        (3, EDGE_CUSTOMER, OTHER_TERMINAL, T0 - 1 * day + 1, 30.0, 0),
        (4, EDGE_CUSTOMER, OTHER_TERMINAL, T0 - 7 * day, 2000.0, 0),
        (5, EDGE_CUSTOMER, OTHER_TERMINAL, T0 - 30 * day, 4000.0, 0),
        (6, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - d * day, 5.0, 1),
        (7, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - d * day + 1, 5.0, 1),
        (8, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 1) * day, 5.0, 0),
        (9, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 1) * day + 1, 5.0, 0),
        (10, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 7) * day, 5.0, 1),
        (11, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 7) * day + 1, 5.0, 0),
        (12, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 30) * day, 5.0, 1),
        (13, EDGE_CUSTOMER + 1, EDGE_TERMINAL, T0 - (d + 30) * day + 1, 5.0, 0),
        # Night ends at the last second of hour 6, on a Sunday (2018-05-06, day 35).
        (14, EDGE_CUSTOMER + 2, OTHER_TERMINAL, 35 * day + 7 * 3600 - 1, 7.0, 0),
        (15, EDGE_CUSTOMER + 2, OTHER_TERMINAL, 35 * day + 7 * 3600, 7.0, 0),
    ]
    origin = dt.datetime.combine(PARAMS.origin, dt.time())
    return pl.DataFrame(
        {
            "transaction_id": [FIRST_EDGE_ID + r[0] for r in rows],
            "tx_datetime": [origin + dt.timedelta(seconds=r[3]) for r in rows],
            "customer_id": [r[1] for r in rows],
            "terminal_id": [r[2] for r in rows],
            "tx_amount": [r[4] for r in rows],
            "tx_time_seconds": [r[3] for r in rows],
            "tx_time_days": [r[3] // SECONDS_PER_DAY for r in rows],
            "tx_fraud": [r[5] for r in rows],
            "tx_fraud_scenario": [r[5] for r in rows],
        },
        schema_overrides={"tx_datetime": pl.Datetime("ms")},
    ).with_columns(batch_id=pl.col("tx_datetime").dt.date().cast(pl.String))


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """45 simulated days (few terminals, so terminal windows hold frauds) plus the edge rows."""
    days = list(TransactionSimulator(PARAMS).days())
    frame = pl.concat(
        [d.frame.with_columns(batch_id=pl.lit(d.date.isoformat())) for d in days]
    ).drop("base_amount")
    edges = _edge_rows().cast(dict(frame.schema))
    return pl.concat([frame, edges.select(frame.columns)])


@pytest.fixture(scope="module")
def spark_clean(spark: SparkSession, clean: pl.DataFrame, tmp_path_factory) -> DataFrame:
    """The same rows in Spark, through Parquet: naive datetimes arrive as TIMESTAMP_NTZ."""
    path: Path = tmp_path_factory.mktemp("parity") / "clean.parquet"
    clean.write_parquet(path)
    return spark.read.parquet(str(path))


@pytest.fixture(scope="module")
def both(clean: pl.DataFrame, spark_clean: DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features from each engine, as Polars frames sorted by transaction_id."""
    polars_out = compute_features(clean).sort("transaction_id")
    spark_out = compute_features_spark(spark_clean)
    spark_pl = pl.from_arrow(spark_out.toArrow()).sort("transaction_id")
    return polars_out, spark_pl  # type: ignore[return-value]


def _mismatches(left: pl.Series, right: pl.Series, ids: pl.Series) -> pl.DataFrame:
    """Rows where the engines differ: integers exactly, floats beyond REL_TOL (NaN == NaN)."""
    frame = pl.DataFrame({"transaction_id": ids, "polars": left, "spark": right})
    a, b = pl.col("polars"), pl.col("spark")
    if left.dtype.is_integer():
        same = a == b
    else:
        close = (a - b).abs() <= REL_TOL * pl.max_horizontal(a.abs(), b.abs())
        same = (a == b) | close | (a.is_nan() & b.is_nan())
    return frame.filter(~same)


def test_spark_and_polars_compute_identical_features_on_several_batches(
    clean: pl.DataFrame, both: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    polars_out, spark_out = both
    assert clean["batch_id"].n_unique() >= 45
    assert spark_out.height == polars_out.height == clean.height
    assert set(clean.columns + FEATURE_COLUMNS) <= set(spark_out.columns)
    assert spark_out["transaction_id"].equals(polars_out["transaction_id"])
    # The data must exercise the terminal windows, not just compare zeros.
    assert polars_out["terminal_risk_7d"].max() > 0 and polars_out["terminal_nb_tx_1d"].min() == 0
    runs = polars_out["terminal_fraud_run_days"]
    assert runs.max() > 1 and (runs == 0).any() and runs.n_unique() > 10  # type: ignore[operator]
    assert polars_out["terminal_fraud_run_min_amount"].n_unique() > 10

    for name in FEATURE_COLUMNS:
        left, right = polars_out[name], spark_out[name]
        assert left.null_count() == right.null_count() == 0, name
        if left.dtype.is_integer():
            assert right.dtype.is_integer(), name
            left, right = left.cast(pl.Int64), right.cast(pl.Int64)
        bad = _mismatches(left, right, polars_out["transaction_id"])
        assert bad.is_empty(), f"{name}: {bad.height} rows differ, e.g.\n{bad.head(5)}"

    # Input columns come through unchanged, timestamps included.
    for name in clean.columns:
        assert spark_out[name].cast(clean[name].dtype).equals(polars_out[name]), name


def test_window_edges_follow_the_spec_in_both_engines(
    both: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """Hand-computed values for the edge rows: exact boundaries are out, one second in is in."""
    first, second = FIRST_EDGE_ID, FIRST_EDGE_ID + 1  # same second, ordered by id
    expected = {
        # Window (t-w, t]: 1d holds the row 1 s inside; 7d adds t-1d; 30d adds t-7d.
        (first, "customer_nb_tx_1d"): 2,
        (first, "customer_nb_tx_7d"): 3,
        (first, "customer_nb_tx_30d"): 4,
        (second, "customer_nb_tx_1d"): 3,
        (first, "customer_avg_amount_1d"): (10.0 + 30.0) / 2,
        (second, "customer_avg_amount_7d"): (10.0 + 20.0 + 30.0 + 1000.0) / 4,
        (second, "customer_avg_amount_30d"): (10.0 + 20.0 + 30.0 + 1000.0 + 2000.0) / 5,
        (second, "customer_amount_ratio_30d"): 20.0 / ((3060.0) / 5),
        (first, "customer_amount_ratio_1d"): 10.0 / ((10.0 + 30.0) / 2),
        (second, "customer_amount_ratio_7d"): 20.0 / ((10.0 + 20.0 + 30.0 + 1000.0) / 4),
        # The newest known row (t-d) is a fraud after a genuine one: a run of d days.
        (first, "terminal_fraud_run_days"): float(LABEL_DELAY_DAYS),
        (first, "terminal_fraud_run_min_amount"): 5.0,  # that run is row 6 alone
        # Terminal window (t-d-w, t-d]: t-d in, t-d+1 s out, t-d-w out, t-d-w+1 s in.
        (first, "terminal_nb_tx_1d"): 2,
        (first, "terminal_risk_1d"): 1 / 2,
        (second, "terminal_nb_tx_7d"): 4,
        (second, "terminal_risk_7d"): 1 / 4,
        (first, "terminal_nb_tx_30d"): 6,
        (first, "terminal_risk_30d"): 2 / 6,
        (FIRST_EDGE_ID + 14, "tx_during_night"): 1,
        (FIRST_EDGE_ID + 15, "tx_during_night"): 0,
        (FIRST_EDGE_ID + 15, "tx_during_weekend"): 1,
        (first, "tx_during_weekend"): 0,  # 2018-05-11 is a Friday
    }
    assert WINDOWS_DAYS == (1, 7, 30) and LABEL_DELAY_DAYS == 7  # the values above assume these
    for engine, out in zip(("polars", "spark"), both, strict=True):
        for (tx, name), value in expected.items():
            got = out.filter(pl.col("transaction_id") == tx)[name].item()
            assert got == pytest.approx(value, rel=REL_TOL), (engine, tx, name)


def test_calendar_flags_do_not_move_with_the_session_time_zone(
    spark: SparkSession, spark_clean: DataFrame, clean: pl.DataFrame
) -> None:
    """NTZ input and zoned TIMESTAMP input both give Polars' flags under a non-UTC session."""
    flags = ["tx_during_weekend", "tx_during_night"]
    expected = compute_features(clean).sort("transaction_id").select(flags)
    as_instant = spark_clean.withColumn("tx_datetime", spark_clean["tx_datetime"].cast("timestamp"))
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        for frame in (spark_clean, as_instant):
            out = compute_features_spark(frame).select("transaction_id", *flags).toArrow()
            got = pl.from_arrow(out).sort("transaction_id").select(flags)  # type: ignore[union-attr]
            assert got.cast(pl.Int64).equals(expected.cast(pl.Int64))
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_the_spark_engine_writes_the_same_feature_table_as_polars(
    spark: SparkSession, tmp_path: Path
) -> None:
    """End to end through the lake: same columns, same types, same values, batch by batch.

    Spark reads the committed clean files only: a stray copy of each batch's rows beside them (a
    crashed write's leftovers) would double every count if it read the folder.
    """
    landing, lake = tmp_path / "landing", Lake(*filesystem_for(str(tmp_path / "lake")))
    write_days(landing, days=4)
    config = CleaningConfig(origin_date=dt.date(2024, 3, 1))
    for day in sorted(p.stem for p in landing.glob("*.txt")):
        clean_into_lake(lake, landing / f"{day}.txt", day, Pseudonymizer(b"k"), config)
        for entry in lake.files(CLEAN, batches={day}):
            stray = tmp_path / "lake" / entry.path.replace(".parquet", ".crashed.parquet")
            shutil.copy(tmp_path / "lake" / entry.path, stray)
        polars_out = features_for_batch(lake, day, "polars")
        spark_out = features_for_batch(lake, day, "spark", spark)
        assert spark_out.schema == polars_out.schema, day
        for name in polars_out.columns:
            if not polars_out[name].dtype.is_numeric():
                assert spark_out[name].equals(polars_out[name]), (day, name)
                continue
            bad = _mismatches(polars_out[name], spark_out[name], polars_out["transaction_id"])
            assert bad.is_empty(), f"{day} {name}: {bad.height} rows differ"
