"""pandera schemas of the platform's tables, used by the asset checks and by the tests."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from fraud_assets.features.spec import WINDOWS_DAYS


class CleanTransactions(pa.DataFrameModel):
    transaction_id: int = pa.Field(unique=True, ge=0)
    tx_datetime: pl.Datetime = pa.Field(nullable=False)
    customer_id: int = pa.Field(ge=0)  # a pseudonym: 63-bit HMAC
    terminal_id: int = pa.Field(ge=0)
    tx_amount: float = pa.Field(gt=0)  # never clipped above: large amounts are fraud scenario 1
    tx_time_seconds: int
    tx_time_days: int
    tx_fraud: pl.Int8 = pa.Field(isin=[0, 1])
    tx_fraud_scenario: pl.Int8 = pa.Field(in_range={"min_value": 0, "max_value": 3})
    batch_id: str

    @pa.dataframe_check
    def days_follow_seconds(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("tx_time_days") == pl.col("tx_time_seconds").floordiv(86_400)
        )

    class Config:
        strict = True


class QuarantinedTransactions(pa.DataFrameModel):
    batch_id: str
    line_no: int = pa.Field(ge=2)  # line 1 is the header
    line: str = pa.Field(nullable=False)
    reason: str

    class Config:
        strict = True


def _feature_fields() -> dict:
    fields = {}
    for w in WINDOWS_DAYS:
        fields[f"customer_nb_tx_{w}d"] = pa.Column(pl.Int64, pa.Check.ge(1))  # current included
        fields[f"customer_avg_amount_{w}d"] = pa.Column(pl.Float64, pa.Check.gt(0))
        fields[f"terminal_nb_tx_{w}d"] = pa.Column(pl.Int64, pa.Check.ge(0))
        fields[f"terminal_risk_{w}d"] = pa.Column(pl.Float64, pa.Check.in_range(0, 1))
    return fields


TransactionFeatures = pa.DataFrameSchema(
    {
        "transaction_id": pa.Column(pl.Int64, unique=True),
        "tx_datetime": pa.Column(pl.Datetime),
        "customer_id": pa.Column(pl.Int64),
        "terminal_id": pa.Column(pl.Int64),
        "tx_amount": pa.Column(pl.Float64, pa.Check.gt(0)),
        "tx_fraud": pa.Column(pl.Int8, pa.Check.isin([0, 1])),
        "tx_during_weekend": pa.Column(pl.Int8, pa.Check.isin([0, 1])),
        "tx_during_night": pa.Column(pl.Int8, pa.Check.isin([0, 1])),
        "customer_amount_ratio_30d": pa.Column(pl.Float64, pa.Check.gt(0)),
        **_feature_fields(),
    },
    strict=False,
)


def failures(schema: pa.DataFrameModel | pa.DataFrameSchema, frame: pl.DataFrame) -> list[str]:
    """What breaks the schema, one line per (column, check) with its count and an example.

    Empty when the frame passes. Lines, not the raw error: the whole error of a large table is
    megabytes of failure cases.
    """
    import pandera.errors

    try:
        schema.validate(frame, lazy=True)
        return []
    except pandera.errors.SchemaErrors as e:
        cases = e.failure_cases
        grouped = (
            cases.with_columns(pl.col("failure_case").cast(pl.String))
            .group_by("column", "check", maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("failure_case").first().alias("example"))
        )
        lines = []
        for row in grouped.iter_rows(named=True):
            example = str(row["example"])[:80]
            lines.append(f"{row['column']}: {row['check']} ({row['n']:,} case(s), e.g. {example})")
        return lines
