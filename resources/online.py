"""The scoring service's online feature store and label log, as seen from the batch side.

`online_feature_state` publishes into the store, `fraud_labels` reads the service's label log.
The Redis URL may carry a password: the environment gives it through `dg.EnvVar`, so the UI
shows the variable's name, never its value.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from fraud_assets.serving.online_features import OnlineFeatureStore


class OnlineStore(dg.ConfigurableResource):
    """Redis when `redis_url` is set (deployment); otherwise the services keep the state in
    process and load it from the lake at start (warm start), and publishing records nothing."""

    redis_url: str | None = Field(default=None, description="FRAUD_REDIS_URL (a secret)")
    prefix: str = Field(default="fraud:", description="key prefix, as FRAUD_REDIS_PREFIX")
    label_log_dir: str = Field(description="the scoring service's FRAUD_LABEL_LOG_DIR")
    origin_date: str = Field(
        default="2018-04-01",
        description="the scoring service's FRAUD_ORIGIN_DATE: published times count from it",
    )

    @property
    def origin(self) -> dt.datetime:
        return dt.datetime.combine(dt.date.fromisoformat(self.origin_date), dt.time())

    @property
    def kind(self) -> str:
        return "redis" if self.redis_url else "in-process (warm start from the lake)"

    def store(self) -> OnlineFeatureStore | None:
        """The Redis store, or None when the services keep their state in process."""
        if not self.redis_url:
            return None
        from fraud_assets.serving.online_features import RedisFeatureStore
        from fraud_assets.serving.wiring import redis_client

        return RedisFeatureStore(redis_client(self.redis_url, 10.0), prefix=self.prefix)

    def describe(self) -> dict[str, Any]:
        return {"store": self.kind, "prefix": self.prefix, "origin_date": self.origin_date}
