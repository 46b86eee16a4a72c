"""Table schema checks (`schemas.find_failures`) run by Spark's executors, one partition each.

Each partition is checked with the default engine's own rules; the driver gets one line per
(column, check) with the cases summed, never a row. Uniqueness is checked within a partition:
the tables checked here are range-partitioned by their id (clean) or hold ids the clean table
already made unique (features).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from fraud_assets.schemas import Failure, TableSchema, find_failures

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_FAILURES = "column string, check string, cases long, example string, at long"
_STRUCTURAL = ("column_in_dataframe", "column_in_schema")


def spark_failures(schema: TableSchema, frame: DataFrame) -> list[str]:
    """`schemas.failures(schema, table)` for a Spark table, computed where its rows are."""
    from pyspark.sql import functions as F

    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parts = list(batches)
        if not parts:
            return
        table = pa.Table.from_batches(parts)
        part = pl.from_arrow(table)
        found = find_failures(schema, part)  # type: ignore[arg-type]
        if found:
            yield pa.RecordBatch.from_pylist(
                [
                    {
                        "column": f.column,
                        "check": f.check,
                        "cases": f.cases,
                        "example": f.example,
                        "at": i,
                    }
                    for i, f in enumerate(found)
                ],
                schema=pa.schema(
                    [
                        ("column", pa.string()),
                        ("check", pa.string()),
                        ("cases", pa.int64()),
                        ("example", pa.string()),
                        ("at", pa.int64()),
                    ]
                ),
            )

    rows = (
        frame.mapInArrow(check, _FAILURES)
        .groupBy("column", "check")
        .agg(
            F.sum("cases").alias("cases"),
            F.max("cases").alias("most"),
            F.min_by("example", "at").alias("example"),
            F.min("at").alias("at"),
        )
        .collect()
    )
    out = []
    for row in sorted(rows, key=lambda r: r["at"]):
        structural = row["check"] in _STRUCTURAL or row["check"].startswith("dtype(")
        cases = row["most"] if structural else row["cases"]
        out.append(str(Failure(row["column"], row["check"], int(cases), row["example"])))
    return out


def spark_failures_by(schema: TableSchema, frame: DataFrame, by: str) -> dict[str, list[str]]:
    """`spark_failures` for each value of column `by` (e.g. each batch of a features table)."""
    from pyspark.sql import functions as F

    keys = [r[0] for r in frame.select(by).distinct().collect()]
    return {key: spark_failures(schema, frame.where(F.col(by) == key)) for key in keys}
