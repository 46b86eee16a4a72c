"""The platform's table schemas, declared once, checked with Polars, and available as pandera.

Each table's rules (columns, exact types, nullability, uniqueness, value checks, table-level
checks, strictness) are plain data here. `failures()` evaluates them as Polars expressions in one
pass over the table; `to_pandera()` builds the equivalent pandera schema. Batch runs use the
Polars evaluation because importing pandera (which imports pandas) costs seconds in every fresh
run process; `tests/test_schemas.py` holds the two to the same verdicts on generated tables
(docs/decisions/schema-checks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fraud_assets.cleaning.rules import DEFAULT_MAX_AMOUNT
from fraud_assets.features.spec import WINDOWS_DAYS
from fraud_assets.rawdata.format import BatchPeriod

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Check:
    kind: str  # ge, gt, le, lt, isin, in_range
    value: Any
    upper: Any = None  # in_range's maximum

    @property
    def name(self) -> str:
        """pandera's name for the check, as its failure reports say it."""
        names = {
            "ge": "greater_than_or_equal_to",
            "gt": "greater_than",
            "le": "less_than_or_equal_to",
            "lt": "less_than",
        }
        if self.kind == "isin":
            return f"isin({list(self.value)!r})"
        if self.kind == "in_range":
            return f"in_range({self.value}, {self.upper})"
        return f"{names[self.kind]}({self.value})"

    def passes(self, column: pl.Expr) -> pl.Expr:
        if self.kind == "ge":
            return column >= self.value
        if self.kind == "gt":
            return column > self.value
        if self.kind == "le":
            return column <= self.value
        if self.kind == "lt":
            return column < self.value
        if self.kind == "isin":
            return column.is_in(list(self.value))
        if self.kind == "in_range":
            return (column >= self.value) & (column <= self.upper)
        raise ValueError(f"unknown check {self.kind!r}")

    def to_pandera(self):  # noqa: ANN201 - a pandera Check
        import pandera.polars as pa

        if self.kind == "isin":
            return pa.Check.isin(list(self.value))
        if self.kind == "in_range":
            return pa.Check.in_range(self.value, self.upper)
        return getattr(pa.Check, self.kind)(self.value)


def ge(value: Any) -> Check:  # noqa: ANN401
    return Check("ge", value)


def gt(value: Any) -> Check:  # noqa: ANN401
    return Check("gt", value)


def le(value: Any) -> Check:  # noqa: ANN401
    return Check("le", value)


def isin(values: Sequence[Any]) -> Check:
    return Check("isin", tuple(values))


def in_range(low: Any, high: Any) -> Check:  # noqa: ANN401
    return Check("in_range", low, high)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    checks: tuple[Check, ...] = ()
    nullable: bool = False
    unique: bool = False


@dataclass(frozen=True)
class TableCheck:
    name: str
    passes: Callable[[], pl.Expr]  # one boolean per row


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    strict: bool = False  # columns beyond the schema are failures
    table_checks: tuple[TableCheck, ...] = field(default_factory=tuple)

    def validate(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame, or SchemaViolation naming every failure."""
        found = failures(self, frame)
        if found:
            raise SchemaViolation(f"{self.name}: " + "; ".join(found))
        return frame


class SchemaViolation(ValueError):
    """A table that breaks its schema."""


@dataclass(frozen=True)
class Failure:
    column: str  # the schema's name for table-level failures
    check: str  # pandera's name of the check
    cases: int
    example: str

    def __str__(self) -> str:
        return f"{self.column}: {self.check} ({self.cases:,} case(s), e.g. {self.example[:80]})"


def failures(schema: TableSchema, frame: pl.DataFrame) -> list[str]:
    """What breaks the schema, one line per (column, check) with its count and an example."""
    return [str(f) for f in find_failures(schema, frame)]


def find_failures(schema: TableSchema, frame: pl.DataFrame) -> list[Failure]:
    found: list[Failure] = []
    declared = {c.name for c in schema.columns}
    for column in schema.columns:
        if column.name not in frame.columns:
            found.append(Failure(schema.name, "column_in_dataframe", 1, column.name))
    if schema.strict:
        for name in frame.columns:
            if name not in declared:
                found.append(Failure(schema.name, "column_in_schema", 1, name))
    present = [c for c in schema.columns if c.name in frame.columns]
    for column in present:
        if frame.schema[column.name] != column.dtype:
            dtype = frame.schema[column.name]
            found.append(Failure(column.name, f"dtype('{column.dtype}')", 1, str(dtype)))
    # Every row-level rule as a boolean "fails" column, counted in one pass.
    rules: list[tuple[str, str, pl.Expr]] = []
    for column in present:
        values = pl.col(column.name)
        missing = values.is_null()
        if frame.schema[column.name].is_float():
            missing = missing | values.is_nan()
        if not column.nullable:
            rules.append((column.name, "not_nullable", missing.fill_null(True)))
        if column.unique:
            duplicated = values.is_duplicated()  # nulls count as equal, as pandera counts them
            rules.append((column.name, "field_uniqueness", duplicated))
        for check in column.checks:
            rules.append((column.name, check.name, (~check.passes(values)).fill_null(False)))
    for table_check in schema.table_checks:
        fails = (~table_check.passes()).fill_null(False)  # as pandera: null rows do not count
        try:
            frame.head(0).select(fails)
        except pl.exceptions.ColumnNotFoundError as e:  # cannot be evaluated: one failure
            found.append(Failure(schema.name, table_check.name, 1, str(e).splitlines()[0]))
            continue
        rules.append((schema.name, table_check.name, fails))
    if not rules or frame.height == 0:
        return found
    flags = frame.select([expr.alias(f"_{i}") for i, (_, _, expr) in enumerate(rules)])
    counts = flags.sum().row(0)
    for i, ((column, check, _), count) in enumerate(zip(rules, counts, strict=True)):
        if count:
            example = _example(frame, flags[f"_{i}"], column if column in frame.columns else None)
            found.append(Failure(column, check, int(count), example))
    return found


def _example(frame: pl.DataFrame, fails: pl.Series, column: str | None) -> str:
    row = int(fails.arg_true()[0])
    if column is None:
        return f"row {row}"
    return str(frame[column][row])


def to_pandera(schema: TableSchema):  # noqa: ANN201 - a pandera DataFrameSchema
    """The same rules as a pandera schema (imports pandera: seconds)."""
    import pandera.polars as pa

    columns = {
        c.name: pa.Column(
            c.dtype,
            [check.to_pandera() for check in c.checks],
            nullable=c.nullable,
            unique=c.unique,
        )
        for c in schema.columns
    }
    checks = [
        pa.Check(_frame_check(t.passes), name=t.name, element_wise=False)
        for t in schema.table_checks
    ]
    return pa.DataFrameSchema(columns, checks=checks, strict=schema.strict, name=schema.name)


def _frame_check(passes: Callable[[], pl.Expr]) -> Callable:
    def check(data) -> pl.LazyFrame:  # noqa: ANN001 - pandera's PolarsData
        return data.lazyframe.select(passes())

    return check


def clean_transactions_schema(
    max_amount: float = DEFAULT_MAX_AMOUNT, period: BatchPeriod | None = None
) -> TableSchema:
    """The clean table's rules; a batch's own table is also held to its period (the bounds the
    cleaning rules quarantine by, so a table that passed cleaning passes these)."""
    in_period = (in_range(period.start, period.end),) if period is not None else ()
    return TableSchema(
        "CleanTransactions",
        (
            Column("transaction_id", pl.Int64(), (ge(0),), unique=True),
            Column("tx_datetime", pl.Datetime("us"), in_period),
            Column("customer_id", pl.Int64(), (ge(0),)),  # a pseudonym: 63-bit HMAC
            Column("terminal_id", pl.Int64(), (ge(0),)),
            # Never clipped (large amounts are fraud); only impossible ones are kept out.
            Column("tx_amount", pl.Float64(), (gt(0), le(max_amount))),
            Column("tx_time_seconds", pl.Int64()),
            Column("tx_time_days", pl.Int64()),
            Column("tx_fraud", pl.Int8(), (isin([0, 1]),)),
            Column("tx_fraud_scenario", pl.Int8(), (in_range(0, 3),)),
            Column("batch_id", pl.String()),
        ),
        strict=True,
        table_checks=(
            TableCheck(
                "days_follow_seconds",
                lambda: (
                    pl.col("tx_time_days") == pl.col("tx_time_seconds").floordiv(SECONDS_PER_DAY)
                ),
            ),
        ),
    )


CleanTransactions = clean_transactions_schema()

QuarantinedTransactions = TableSchema(
    "QuarantinedTransactions",
    (
        Column("batch_id", pl.String()),
        Column("line_no", pl.Int64(), (ge(2),)),  # line 1 is the header
        Column("line", pl.String()),
        Column("reason", pl.String()),
    ),
    strict=True,
)


def _window_columns() -> tuple[Column, ...]:
    out = []
    for w in WINDOWS_DAYS:
        out += [
            Column(f"customer_nb_tx_{w}d", pl.Int64(), (ge(1),)),  # the current one included
            Column(f"customer_avg_amount_{w}d", pl.Float64(), (gt(0),)),
            Column(f"terminal_nb_tx_{w}d", pl.Int64(), (ge(0),)),
            Column(f"terminal_risk_{w}d", pl.Float64(), (in_range(0, 1),)),
        ]
    return tuple(out)


TransactionFeatures = TableSchema(
    "TransactionFeatures",
    (
        Column("transaction_id", pl.Int64(), unique=True),
        Column("tx_datetime", pl.Datetime("us")),
        Column("customer_id", pl.Int64()),
        Column("terminal_id", pl.Int64()),
        Column("tx_amount", pl.Float64(), (gt(0),)),
        Column("tx_fraud", pl.Int8(), (isin([0, 1]),)),
        Column("tx_during_weekend", pl.Int8(), (isin([0, 1]),)),
        Column("tx_during_night", pl.Int8(), (isin([0, 1]),)),
        Column("customer_amount_ratio_30d", pl.Float64(), (gt(0),)),
        *_window_columns(),
        Column("customer_prior_outliers_7d", pl.Int64(), (ge(0),)),
    ),
)
