"""The Spark feature engine: dagster-pyspark's lazy resource, which starts Spark on first use."""

from __future__ import annotations

from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from resources.processing import FeatureEngine


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


class SparkFeatureEngine(FeatureEngine):
    engine: str = Field(default="spark", description="spark")
    pyspark: LazyPySparkResource = Field(default_factory=local_spark)

    def spark_session(self):  # noqa: ANN201 - a pyspark SparkSession
        return self.pyspark.spark_session
