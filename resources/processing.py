"""Resources for processing batches: the pseudonymisation key and the feature engine."""

from __future__ import annotations

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from fraud_assets.privacy import Pseudonymizer


class PseudonymKey(dg.ConfigurableResource):
    """The HMAC key for customer/terminal pseudonyms; the same key must serve the scoring API."""

    key: str | None = Field(
        default=None,
        description="Secret key; unset means FRAUD_PSEUDONYM_KEY, else a loud development default",
    )

    def pseudonymizer(self) -> Pseudonymizer:
        return Pseudonymizer(self.key.encode() if self.key else None)


def local_spark(master: str = "local[2]") -> LazyPySparkResource:
    return LazyPySparkResource(
        spark_config={
            "spark.master": master,
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": "8",
            "spark.ui.enabled": "false",
            "spark.driver.memory": "4g",
            # Features come back to the driver as Arrow (the lake is written by one writer);
            # a 10 M-row batch is ≈ 1.1 GB, above Spark's 1 GB default.
            "spark.driver.maxResultSize": "0",
        }
    )


class FeatureEngine(dg.ConfigurableResource):
    """Which engine computes features: `polars` in process (default) or `spark`."""

    engine: str = Field(default="polars", description="polars | spark")
    pyspark: LazyPySparkResource = Field(default_factory=local_spark)

    def spark_session(self):  # noqa: ANN201 - pyspark is imported lazily
        return self.pyspark.spark_session if self.engine == "spark" else None
