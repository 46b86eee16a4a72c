"""Table schema checks (`schemas.find_failures`) run by Spark's executors, one partition each.

Each partition is checked with the default engine's own rules; the driver gets one line per
(column, check) with the cases summed, never a row. Uniqueness is checked within a partition:
the tables checked here are range-partitioned by their id (clean) or hold ids the clean table
already made unique (features).

Two ways to run them: `spark_failures_by` reads a table (e.g. staged files) in a job of its own;
`PartitionFailures` collects the same per-partition lines from inside a pass that already holds
the rows (the row plan's clean write), through an accumulator, so the rows are not read again.
The byte-range and time-slice tasks return `failure_rows` with their results instead. All are
summed by `summarise`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from pyspark.accumulators import AccumulatorParam

from fraud_assets.batch.schemas import Failure, TableSchema, find_failures
from fraud_assets.spark.arrow import partition_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_FAILURES = "column string, check string, cases long, example string, at long"
_STRUCTURAL = ("column_in_dataframe", "column_in_schema")
_ROW = pa.schema(
    [
        ("key", pa.string()),
        ("column", pa.string()),
        ("check", pa.string()),
        ("cases", pa.int64()),
        ("example", pa.string()),
        ("at", pa.int64()),
    ]
)


def failure_rows(schema: TableSchema, table: pl.DataFrame, by: str | None) -> list[dict]:
    """One partition's failures, one row per (value of `by`, failure), `at` its place in the
    partition's list (the earliest place of a check gives its example)."""
    groups = table.partition_by(by, as_dict=True) if by else {(None,): table}
    rows = []
    for (key,), part in groups.items():
        for i, f in enumerate(find_failures(schema, part)):
            rows.append(
                {
                    "key": key,
                    "column": f.column,
                    "check": f.check,
                    "cases": f.cases,
                    "example": f.example,
                    "at": i,
                }
            )
    return rows


def summarise(rows: list[dict]) -> dict[str | None, list[str]]:
    """Partitions' failure rows summed per (key, column, check): cases added up (a structural
    failure, the same in every partition, counted once), the example of the earliest place."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        name = (row["key"], row["column"], row["check"])
        seen = merged.get(name)
        if seen is None:
            merged[name] = {**row, "most": row["cases"]}
            continue
        seen["most"] = max(seen["most"], row["cases"])
        seen["cases"] += row["cases"]
        if (row["at"], row["example"] or "") < (seen["at"], seen["example"] or ""):
            seen["at"], seen["example"] = row["at"], row["example"]
    out: dict[str | None, list[str]] = {}
    for row in sorted(merged.values(), key=lambda r: (r["key"] or "", r["at"])):
        structural = row["check"] in _STRUCTURAL or row["check"].startswith("dtype(")
        cases = row["most"] if structural else row["cases"]
        failure = Failure(row["column"], row["check"], int(cases), row["example"])
        out.setdefault(row["key"], []).append(str(failure))
    return out


class PartitionFailures(AccumulatorParam):
    """An accumulator of {partition: what the partition reported}: a task run again (a retry)
    replaces its partition's report instead of adding to it."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:  # noqa: N802 - Spark's name
        value1.update(value2)
        return value1


def spark_failures(schema: TableSchema, frame: DataFrame) -> list[str]:
    """`schemas.failures(schema, table)` for a Spark table, computed where its rows are."""
    return spark_failures_by(schema, frame, None).get(None, [])


def spark_failures_by(
    schema: TableSchema, frame: DataFrame, by: str | None
) -> dict[str | None, list[str]]:
    """`spark_failures` for each value of column `by` (e.g. each batch of a features table),
    in one pass."""

    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = partition_frame(batches)
        if table is None:
            return
        rows = failure_rows(schema, table, by)  # type: ignore[arg-type]
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=_ROW)

    found = frame.mapInArrow(check, "key string, " + _FAILURES).collect()
    return summarise([row.asDict() for row in found])
