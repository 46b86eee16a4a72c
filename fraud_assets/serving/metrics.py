"""The scoring service's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fraud_assets.serving.model_source import SourceStatus

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Prometheus metrics in their own registry (several apps can live in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraud_api_requests", "HTTP requests.", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "fraud_api_request_duration_seconds",
            "HTTP request latency.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "fraud_decisions", "Decisions made.", ["decision", "decided_by"], registry=r
        )
        self.feature_store_errors = Counter(
            "fraud_feature_store_errors", "Online feature store failures.", registry=r
        )
        self.model_version = Gauge(
            "fraud_model_version", "Registry version being served (0: none).", registry=r
        )
        self.model_info = Gauge(
            "fraud_model_info",
            "1 for the served model.",
            ["model", "version", "threshold"],
            registry=r,
        )
        self.micro_batch = Histogram(
            "fraud_api_micro_batch_size",
            "Concurrent /v1/score requests scored together (one Redis round trip, one model call).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.model_ready = Gauge("fraud_model_ready", "1 when a model is loaded.", registry=r)
        self.registry_unreachable = Gauge(
            "fraud_model_registry_unreachable",
            "1 when the last poll of the model registry failed (the last good model serves).",
            registry=r,
        )
        self.model_swaps = Gauge(
            "fraud_model_swaps", "Model versions loaded since start.", registry=r
        )
        self._info_labels: tuple[str, str, str] | None = None

    def sync(self, status: SourceStatus, model_name: str) -> None:
        self.model_ready.set(1 if status.loaded else 0)
        self.model_version.set(status.version or 0)
        self.registry_unreachable.set(0 if status.healthy else 1)
        self.model_swaps.set(status.swaps)
        labels = (
            (model_name, str(status.version), repr(status.threshold)) if status.loaded else None
        )
        if labels != self._info_labels:
            if self._info_labels is not None:
                self.model_info.remove(*self._info_labels)
            if labels is not None:
                self.model_info.labels(*labels).set(1)
            self._info_labels = labels
