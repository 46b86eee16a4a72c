"""The Spark engine: dagster-pyspark's lazy resource, which starts Spark on first use.

The master is configuration (`FRAUD_SPARK_MASTER`, or this resource's `spark_config`), so the
same code location runs on `local[2]`, a standalone cluster, YARN, Kubernetes or Spark Connect.
"""

from __future__ import annotations

from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from fraud_assets.spark.session import spark_config
from resources.processing import FeatureEngine


def spark_resource(
    master: str | None = None, extra: dict[str, str] | None = None
) -> LazyPySparkResource:
    """Our session settings (fraud_assets/spark/session.py) plus `extra`; `master` defaults to
    FRAUD_SPARK_MASTER, else local[2]."""
    return LazyPySparkResource(spark_config=spark_config(master, extra))


def local_spark(master: str = "local[2]") -> LazyPySparkResource:
    return spark_resource(master)


class SparkFeatureEngine(FeatureEngine):
    """Cleaning and features on Spark: executors read the landing zone and write the lake."""

    engine: str = Field(default="spark", description="spark")
    pyspark: LazyPySparkResource = Field(default_factory=spark_resource)

    def spark_session(self):  # noqa: ANN201 - a pyspark SparkSession
        return self.pyspark.spark_session
