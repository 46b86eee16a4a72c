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

from fraud_assets.batch.schemas import Failure, TableSchema, find_failures

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_FAILURES = "column string, check string, cases long, example string, at long"
_STRUCTURAL = ("column_in_dataframe", "column_in_schema")


def spark_failures(schema: TableSchema, frame: DataFrame) -> list[str]:
    """`schemas.failures(schema, table)` for a Spark table, computed where its rows are."""
    return spark_failures_by(schema, frame, None).get(None, [])


def spark_failures_by(
    schema: TableSchema, frame: DataFrame, by: str | None
) -> dict[str | None, list[str]]:
    """`spark_failures` for each value of column `by` (e.g. each batch of a features table),
    in one pass."""
    from pyspark.sql import functions as F

    out_schema = pa.schema(
        [
            ("key", pa.string()),
            ("column", pa.string()),
            ("check", pa.string()),
            ("cases", pa.int64()),
            ("example", pa.string()),
            ("at", pa.int64()),
        ]
    )

    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parts = list(batches)
        if not parts:
            return
        table = pl.from_arrow(pa.Table.from_batches(parts))
        groups = table.partition_by(by, as_dict=True) if by else {(None,): table}
        rows = []
        for (key,), part in groups.items():
            for i, f in enumerate(find_failures(schema, part)):  # type: ignore[arg-type]
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
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=out_schema)

    found = (
        frame.mapInArrow(check, "key string, " + _FAILURES)
        .groupBy("key", "column", "check")
        .agg(
            F.sum("cases").alias("cases"),
            F.max("cases").alias("most"),
            F.min_by("example", "at").alias("example"),
            F.min("at").alias("at"),
        )
        .collect()
    )
    out: dict[str | None, list[str]] = {}
    for row in sorted(found, key=lambda r: (r["key"] or "", r["at"])):
        structural = row["check"] in _STRUCTURAL or row["check"].startswith("dtype(")
        cases = row["most"] if structural else row["cases"]
        failure = Failure(row["column"], row["check"], int(cases), row["example"])
        out.setdefault(row["key"], []).append(str(failure))
    return out
