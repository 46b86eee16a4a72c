"""The schema checks batch runs make with Polars say what pandera says of the same table.

pandera is the reference: every generated table goes through both, and the failing (column,
check) pairs and their counts must agree (docs/decisions/schema-checks.md).
"""

from __future__ import annotations

import datetime as dt
import math

import pandera.errors
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.schemas import (
    CleanTransactions,
    QuarantinedTransactions,
    SchemaViolation,
    TableSchema,
    TransactionFeatures,
    clean_transactions_schema,
    find_failures,
    to_pandera,
)
from fraud_assets.rawdata.format import BatchPeriod

SCHEMAS = {
    "clean": CleanTransactions,
    # A batch's own clean table: timestamps held to its days, a lower amount maximum.
    "clean of a batch": clean_transactions_schema(
        4.0, BatchPeriod(dt.date(2010, 1, 1), dt.date(2020, 12, 31))
    ),
    "quarantine": QuarantinedTransactions,
    "features": TransactionFeatures,
}


def pandera_failures(schema: TableSchema, frame: pl.DataFrame) -> dict[tuple[str, str], int]:
    try:
        to_pandera(schema).validate(frame, lazy=True)
        return {}
    except pandera.errors.SchemaErrors as e:
        cases = e.failure_cases.with_columns(pl.col("column").fill_null(schema.name))
        counts = cases.group_by("column", "check").len()
        return {(r["column"], r["check"]): r["len"] for r in counts.iter_rows(named=True)}


def polars_failures(schema: TableSchema, frame: pl.DataFrame) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for f in find_failures(schema, frame):
        out[(f.column, f.check)] = out.get((f.column, f.check), 0) + f.cases
    return out


def assert_same(schema: TableSchema, frame: pl.DataFrame) -> None:
    assert polars_failures(schema, frame) == pandera_failures(schema, frame)


def _value(draw, dtype: pl.DataType):  # noqa: ANN001, ANN202
    """A value of the column's type, often at or beyond the schema's bounds."""
    if dtype == pl.Datetime("us"):
        return draw(st.datetimes(dt.datetime(1999, 1, 1), dt.datetime(2030, 1, 1)))
    if dtype.is_float():
        return draw(
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1.5, math.nan, math.inf, 1e308])
            | st.floats(-5, 5, allow_nan=False)
        )
    if dtype.is_integer():
        return draw(st.integers(-3, 5))
    return draw(st.text("ab", max_size=3))


@st.composite
def tables(draw) -> tuple[TableSchema, pl.DataFrame]:  # noqa: ANN001
    schema = SCHEMAS[draw(st.sampled_from(sorted(SCHEMAS)))]
    rows = draw(st.integers(0, 8))
    data = {}
    for column in schema.columns:
        if draw(st.integers(0, 19)) == 0:
            continue  # a missing column
        dtype = column.dtype
        if draw(st.integers(0, 14)) == 0:  # a wrong but compatible type
            dtype = pl.Int32() if dtype.is_integer() else dtype
        values = [
            None if draw(st.integers(0, 9)) == 0 else _value(draw, column.dtype)
            for _ in range(rows)
        ]
        if column.unique and rows > 1 and draw(st.booleans()):
            values[-1] = values[0]  # a duplicate
        data[column.name] = pl.Series(column.name, values, dtype=column.dtype).cast(dtype)
    if draw(st.integers(0, 9)) == 0:
        data["unexpected"] = pl.Series([1] * rows)
    return schema, pl.DataFrame(data)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_every_generated_table_gets_pandera_verdict(table: tuple[TableSchema, pl.DataFrame]):
    assert_same(*table)


def test_a_clean_batch_passes_both_and_a_broken_one_fails_both_the_same_way():
    import tempfile
    from pathlib import Path

    from fraud_assets.cleaning import CleaningConfig, clean_batch
    from fraud_assets.privacy import Pseudonymizer
    from tests.support import write_days

    with tempfile.TemporaryDirectory() as folder:
        summary = write_days(Path(folder), days=1, dirty=0.05)
        result = clean_batch(
            Path(folder) / f"{summary.batches[0]}.txt",
            summary.batches[0],
            Pseudonymizer(b"k"),
            CleaningConfig(),
        )
    assert find_failures(CleanTransactions, result.clean) == []
    assert find_failures(QuarantinedTransactions, result.quarantine) == []
    assert_same(CleanTransactions, result.clean)
    broken = result.clean.with_columns(
        tx_amount=pl.when(pl.int_range(pl.len()) < 3).then(-1.0).otherwise(pl.col("tx_amount")),
        tx_time_days=pl.col("tx_time_days") + (pl.int_range(pl.len()) == 5).cast(pl.Int64),
    )
    found = polars_failures(CleanTransactions, broken)
    assert found == {
        ("tx_amount", "greater_than(0)"): 3,
        ("CleanTransactions", "days_follow_seconds"): 1,
    }
    assert_same(CleanTransactions, broken)
    with pytest.raises(SchemaViolation, match="tx_amount: greater_than"):
        CleanTransactions.validate(broken)
