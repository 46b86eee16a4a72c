"""Resources for processing batches: the pseudonymisation key and the feature engine.

The Spark variant of the feature engine lives in `resources.spark`, so that the code location
imports dagster-pyspark (and with it pyspark) only where Spark is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from fraud_assets.privacy import Pseudonymizer


class PseudonymKey(dg.ConfigurableResource):
    """The HMAC key for customer/terminal pseudonyms; the same key must serve the scoring API."""

    key: str | None = Field(
        default=None,
        description="Secret key; unset means FRAUD_PSEUDONYM_KEY, else a loud development default",
    )

    def pseudonymizer(self) -> Pseudonymizer:
        from fraud_assets.privacy import Pseudonymizer

        return Pseudonymizer(self.key.encode() if self.key else None)


class FeatureEngine(dg.ConfigurableResource):
    """Which engine computes features: `polars` in process (default) or `spark`
    (`resources.spark.SparkFeatureEngine`)."""

    engine: str = Field(default="polars", description="polars | spark")

    def spark_session(self):  # noqa: ANN201 - pyspark is imported lazily
        if self.engine == "spark":
            raise ValueError(
                "engine 'spark' needs a Spark session: use resources.spark.SparkFeatureEngine "
                "(FRAUD_FEATURE_ENGINE=spark chooses it)"
            )
        return None
