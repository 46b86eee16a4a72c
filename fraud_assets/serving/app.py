"""The real-time scoring REST API (FastAPI). Never imports Dagster.

    create_app(settings_or_scorer=None, *, settings=None, poll_seconds=None) -> FastAPI
    app_from_env() -> FastAPI        the uvicorn factory `fraud serve` runs

Endpoints
    POST /v1/score            one raw transaction -> decision        (?explain=true adds reasons,
                              ?features=true the feature vector)
    POST /v1/score/batch      {"transactions": [...]} (1..1000) -> {"results": [...]}, one model
                              call for the batch, results in request order
    POST /v1/features         one raw transaction -> {"transaction_id", "features", "state_as_of"}:
                              the vector scoring would use, recorded like a scored transaction;
                              works without a model
    POST /v1/feedback         the bank's label for a transaction the platform has seen -> label
                              log, online terminal risk (labelling role)
    GET  /healthz             the process is alive (always 200)
    GET  /readyz              200 when a model is loaded, else 503; says which version is served,
                              whether the registry was reachable at the last poll (and the error),
                              and how fresh the online state is (newest batch and transaction)
    GET  /metrics             Prometheus text format

Roles: FRAUD_API_TOKEN scores (/v1/score*, /v1/features), FRAUD_FEEDBACK_TOKEN labels
(/v1/feedback). Tokens are checked before the body is read; bodies over FRAUD_MAX_BODY_BYTES are
refused (413) before they are read; JSON bodies are parsed strictly (`strict_json.py`).

Status codes of /v1/*
    200  scored / recorded
    401  a token is configured and the request lacks `Authorization: Bearer <token>` or
         carries an unknown one
    403  a valid token of the other role (a scoring token on /v1/feedback, or the reverse), or
         labelling without a configured FRAUD_FEEDBACK_TOKEN while scoring needs a token
    404  /v1/feedback: the transaction has not been seen by the platform
    413  the body is larger than FRAUD_MAX_BODY_BYTES
    422  invalid input; `detail[*].loc` names the field, e.g. ["body", "tx_amount"] or
         ["body", "transactions", 3, "tx_datetime"] for the 4th item of a batch; the input is
         never echoed back. Also the time guard: a transaction too far after the newest one
         held, or older than the online history (loc ["body", "tx_datetime"])
    503  the service cannot score right now, body {"detail": ..., "reason": ...}:
         reason "model_not_ready"          no model loaded yet (Retry-After: the poll interval)
         reason "feature_store_unavailable" the online feature store (Redis) failed; nothing is
                                           decided without features. Safe to retry: scoring is
                                           idempotent per transaction id.

Concurrent /v1/score requests are scored together (`micro_batch.py`): while one group is being
scored, the requests that arrive wait and then go as the next group, with one Redis round trip
and one model call. An idle service scores each request at once; `latency_ms` still counts from
each request's own arrival. Histogram `fraud_api_micro_batch_size` shows the group sizes.

The champion is re-read every FRAUD_MODEL_POLL_SECONDS by a background task and hot-swapped
(see `model_source.py`); a request always uses one model version from start to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.telemetry import TelemetryConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field

from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.micro_batch import MicroBatcher
from fraud_assets.serving.model_source import ModelSource, SourceStatus
from fraud_assets.serving.online_features import InMemoryFeatureStore, OnlineFeatureStore
from fraud_assets.serving.rules import RuleSet
from fraud_assets.serving.scoring import (
    FeatureStoreUnavailable,
    InvalidTransaction,
    ModelNotReady,
    Prepared,
    RawTransaction,
    Scorer,
    UnknownTransaction,
)
from fraud_assets.serving.settings import ServiceSettings
from fraud_assets.serving.strict_json import StrictJSONRoute

log = logging.getLogger(__name__)

MAX_BATCH = 1000
# FastAPI's native OpenTelemetry, off unless FRAUD_OPENTELEMETRY is set: it looks up the global
# providers on every request even when none is configured.
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
MAX_MICRO_BATCH = 64  # concurrent /v1/score requests scored together at most
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# ------------------------------------------------------------------------------- API models


class Reason(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="SHAP value in log-odds units (+ pushes to fraud).")


class ScoreResponse(BaseModel):
    transaction_id: int
    fraud_probability: float | None = Field(
        description="Model probability; null only when a rule decided and no model is loaded."
    )
    decision: str = Field(description='"block" or "allow".')
    threshold: float | None = Field(description="The served model's operating threshold.")
    model_version: int | None
    decided_by: str = Field(description='"model" or "rule:<name>".')
    latency_ms: float = Field(description="Time spent scoring (the whole batch for a batch).")
    rule_reason: str | None = None
    reasons: list[Reason] | None = Field(
        None, description="Top 3 SHAP contributions; only with ?explain=true."
    )
    features: dict[str, float] | None = Field(
        None, description="The feature vector the model saw; only with ?features=true."
    )


class StateAsOf(BaseModel):
    newest_transaction: str | None = Field(description="Newest transaction time in the state.")
    newest_batch: str | None = Field(description="Newest batch published into the state.")


class FeaturesResponse(BaseModel):
    transaction_id: int
    features: dict[str, float]
    state_as_of: StateAsOf


class BatchRequest(BaseModel):
    transactions: list[RawTransaction] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    results: list[ScoreResponse]
    model_version: int | None
    latency_ms: float


class FeedbackRequest(BaseModel):
    transaction_id: int = Field(ge=0, le=2**63 - 1)
    fraud: bool
    terminal_id: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Raw terminal id; optional, checked if given."
    )
    tx_time_seconds: int | None = Field(None, ge=0, description="Optional, checked if given.")
    tx_datetime: dt.datetime | None = Field(None, description="ISO 8601; optional, checked.")


class FeedbackResponse(BaseModel):
    transaction_id: int
    tx_time_seconds: int
    fraud: bool
    status: str


class ErrorResponse(BaseModel):
    detail: Any
    reason: str | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "A token of the other role."},
    413: {"description": "Body larger than FRAUD_MAX_BODY_BYTES."},
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, or the online feature store is unavailable.",
    },
}


# ------------------------------------------------------------------------------- metrics


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


class _MetricsMiddleware:
    """Counts every HTTP request by route template (not raw path) and status, with latency."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


class _RoleGuard:
    """Checks the bearer token of /v1/* before anything reads the body (ASGI middleware).

    /v1/feedback is the labelling role (FRAUD_FEEDBACK_TOKEN), every other /v1 path the
    scoring role (FRAUD_API_TOKEN). With no token configured everything is open (development);
    with any token configured, a role without its own token is refused (403).
    """

    def __init__(self, app: Any, scoring: str | None, labelling: str | None) -> None:
        self.app = app
        self.tokens = {"scoring": scoring, "labelling": labelling}
        self.enabled = scoring is not None or labelling is not None

    def _role_of(self, presented: str | None) -> str | None:
        if presented is None:
            return None
        found = None
        for role, token in self.tokens.items():  # compare with every token: constant work
            if token is not None and hmac.compare_digest(presented.encode(), token.encode()):
                found = role
        return found

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.enabled or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        needed = "labelling" if path.rstrip("/") == "/v1/feedback" else "scoring"
        presented = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    presented = credentials.strip()
        role = self._role_of(presented)
        if role == needed:
            await self.app(scope, receive, send)
            return
        if self.tokens[needed] is None:
            variable = "FRAUD_FEEDBACK_TOKEN" if needed == "labelling" else "FRAUD_API_TOKEN"
            detail = f"{path} needs the {needed} role, and {variable} is not configured"
            response = _error(403, {"detail": detail, "reason": "role_not_configured"})
            await response(scope, receive, send)
            return
        if role is None:
            status, detail, reason = 401, "missing or invalid bearer token", "unauthenticated"
            headers = {"WWW-Authenticate": "Bearer"}
        else:
            status, headers, reason = 403, {}, "wrong_role"
            detail = f"this token belongs to the {role} role; {path} needs the {needed} role"
        response = _error(status, {"detail": detail, "reason": reason}, headers)
        await response(scope, receive, send)


def _error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """An error response that always encodes (ASCII escapes; no NaN)."""
    return Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


MAX_ERRORS = 20  # a 422 lists at most this many problems
MAX_MESSAGE = 300  # characters of one message


def _errors_out(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as loc/msg/type only: the input is never echoed back."""
    out = []
    for e in list(errors)[:MAX_ERRORS]:
        loc = [p if isinstance(p, int) else str(p)[:64] for p in e.get("loc", ())]
        out.append(
            {
                "loc": loc,
                "msg": str(e.get("msg", ""))[:MAX_MESSAGE],
                "type": str(e.get("type", "value_error")),
            }
        )
    return out


# ------------------------------------------------------------------------------- assembly


def redis_client(url: str, timeout_seconds: float = 0.5) -> Any:
    """A Redis client that fails fast: bounded socket timeouts and one quick retry.

    redis-py's default retry policy backs off for seconds on a refused connection, far beyond
    the 1 s latency budget; a request should rather get its 503 at once and be retried.
    """
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        health_check_interval=30,
    )


def build_scorer(
    settings: ServiceSettings, warm: bool = False, emit: Callable[[str], None] | None = None
) -> Scorer:
    """The scorer the settings describe: Redis or in-process store, registry-backed model.

    `warm`: an in-process store is loaded from the lake first (FRAUD_WARM_START), printing a
    progress line and the time it took; a Redis store holds what `online_feature_state`
    published. `emit` receives the warm start's progress lines (default: the log).
    """
    from fraud_assets.privacy import Pseudonymizer

    store: OnlineFeatureStore
    if settings.redis_url:
        from fraud_assets.serving.online_features import RedisFeatureStore

        client = redis_client(settings.redis_url, settings.redis_timeout_seconds)
        store = RedisFeatureStore(
            client, prefix=settings.redis_prefix, max_skew_seconds=settings.max_clock_skew_seconds
        )
    else:
        store = InMemoryFeatureStore(max_skew_seconds=settings.max_clock_skew_seconds)
        if warm and settings.warm_start:
            from fraud_assets.online_state.publish import warm_start

            warm_start(store, settings.lake, emit=emit or log.info, origin=settings.origin)
    return Scorer(
        store=store,
        model_source=ModelSource.from_settings(settings),
        rules=RuleSet.from_settings(settings),
        pseudonymizer=Pseudonymizer(),
        origin=settings.origin_date,
        label_log=LabelLog(settings.label_log_dir),
    )


def _json(body: dict[str, Any]) -> Response:
    """The scorer's own result as JSON, as `response_model` documents it.

    Returning a Response skips FastAPI's re-validation of a dict the scorer built itself: about
    a tenth of a single request's cost.
    """
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False).encode(),
        media_type="application/json",
    )


def _prefix_loc(errors: list[dict[str, Any]], prefix: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [*prefix, *e.get("loc", ())],
            "msg": e.get("msg"),
            "type": e.get("type", "value_error"),
        }
        for e in errors
    ]


def create_app(
    settings_or_scorer: ServiceSettings | Scorer | None = None,
    *,
    settings: ServiceSettings | None = None,
    poll_seconds: float | None = None,
) -> FastAPI:
    """The API around a `Scorer`, or around one built from `ServiceSettings` (default: env).

    `settings` still configures auth and polling when a ready scorer is given.
    `poll_seconds` overrides FRAUD_MODEL_POLL_SECONDS.
    """
    if isinstance(settings_or_scorer, Scorer):
        scorer = settings_or_scorer
        settings = settings or ServiceSettings()
    else:
        settings = settings_or_scorer or settings or ServiceSettings()
        scorer = build_scorer(settings, warm=True)
    source = scorer.model_source
    interval = poll_seconds if poll_seconds is not None else settings.model_poll_seconds
    metrics = ServiceMetrics()

    # Concurrent single requests share a thread hop, a Redis round trip and a model call.
    def score_together(prepared: list[Prepared]) -> list[dict[str, Any] | InvalidTransaction]:
        metrics.micro_batch.observe(len(prepared))
        return scorer.score_prepared(prepared)

    batcher = MicroBatcher(score_together, max_batch=MAX_MICRO_BATCH)
    model_name = str(getattr(source.registry, "model_name", settings.model_name))
    store_kind = type(scorer.store).__name__

    def sync_metrics() -> None:
        metrics.sync(source.status(), model_name)

    async def poll_models() -> None:
        while True:
            try:
                if await anyio.to_thread.run_sync(source.refresh):
                    gc.freeze()  # the new model's objects too (see lifespan)
            except Exception:  # noqa: BLE001 - refresh reports errors itself; never die
                log.exception("model refresh crashed")
            sync_metrics()
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.warn_if_insecure()
        task = asyncio.create_task(poll_models()) if source.registry is not None else None
        sync_metrics()
        # The ~400 k objects of the loaded libraries and model never die; left to the collector,
        # each full collection scans them all and stalls every request for ~0.2-1 s. Frozen,
        # they are skipped (a full collection then takes microseconds).
        gc.freeze()
        try:
            yield
        finally:
            batcher.close()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Fraud scoring API",
        version="1",
        description="Real-time card-fraud scoring with the registry's champion model. "
        'Decisions are "block" or "allow"; see the module docs of fraud_assets.serving.app.',
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
        max_body_size=settings.max_body_bytes,  # 413 before the body is read (Content-Length)
    )
    app.router.route_class = StrictJSONRoute
    app.state.scorer = scorer
    app.state.settings = settings
    app.state.metrics = metrics
    # Outermost first: the role check answers before anything reads the body.
    app.add_middleware(_RoleGuard, scoring=settings.api_token, labelling=settings.feedback_token)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    token = settings.api_token or settings.feedback_token

    # Documents the bearer scheme in the OpenAPI schema; `_RoleGuard` does the checking.
    bearer = HTTPBearer(auto_error=False, description="FRAUD_API_TOKEN / FRAUD_FEEDBACK_TOKEN")

    async def document_bearer(
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    ) -> None:
        return None

    v1 = [Depends(document_bearer)] if token else []

    # -- errors ---------------------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(request: Request, exc: RequestValidationError) -> Response:
        return _error(422, {"detail": _errors_out(exc.errors())})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if isinstance(detail, list):
            detail = _errors_out(detail)
        return _error(exc.status_code, {"detail": detail}, getattr(exc, "headers", None))

    @app.exception_handler(InvalidTransaction)
    async def _invalid(request: Request, exc: InvalidTransaction) -> Response:
        prefix: list[Any] = ["body"]
        if exc.index is not None:
            prefix += ["transactions", exc.index]
        return _error(422, {"detail": _errors_out(_prefix_loc(exc.errors, prefix))})

    @app.exception_handler(UnknownTransaction)
    async def _unknown(request: Request, exc: UnknownTransaction) -> Response:
        return _error(404, {"detail": str(exc), "reason": "unknown_transaction"})

    @app.exception_handler(ModelNotReady)
    async def _not_ready(request: Request, exc: ModelNotReady) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": str(exc), "reason": "model_not_ready"},
            headers={"Retry-After": str(max(1, int(interval)))},
        )

    @app.exception_handler(FeatureStoreUnavailable)
    async def _store_down(request: Request, exc: FeatureStoreUnavailable) -> JSONResponse:
        metrics.feature_store_errors.inc()
        log.error("%s", exc)
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"{exc}. Nothing was decided; retry (scoring is idempotent per "
                "transaction id).",
                "reason": "feature_store_unavailable",
            },
            headers={"Retry-After": "1"},
        )

    def count(results: list[dict[str, Any]]) -> None:
        for r in results:
            metrics.decisions.labels(r["decision"], r["decided_by"]).inc()

    # -- routes ---------------------------------------------------------------------------------

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        dependencies=v1,
        responses=_ERRORS,
    )
    async def score(
        transaction: RawTransaction,
        explain: Annotated[bool, Query(description="Add the top 3 SHAP reasons.")] = False,
        features: Annotated[bool, Query(description="Add the feature vector.")] = False,
    ) -> Response:
        """Score one raw transaction."""
        prepared = scorer.prepare(transaction)  # validation only: fine on the event loop
        if explain or features:  # debugging requests stay out of the shared batches
            alone = functools.partial(
                scorer.score_prepared, [prepared], explain=explain, features=features
            )
            result = (await anyio.to_thread.run_sync(alone))[0]
        else:
            result = await batcher.submit(prepared)
        if isinstance(result, InvalidTransaction):
            raise InvalidTransaction(result.errors)  # one request: no batch index
        count([result])
        return _json(result)

    @app.post(
        "/v1/score/batch",
        response_model=BatchResponse,
        dependencies=v1,
        responses=_ERRORS,
    )
    def score_batch(
        batch: BatchRequest,
        explain: Annotated[bool, Query(description="Add the top 3 SHAP reasons.")] = False,
        features: Annotated[bool, Query(description="Add each feature vector.")] = False,
    ) -> Response:
        """Score up to 1000 transactions with one model call; results in request order."""
        results = scorer.score_many(batch.transactions, explain=explain, features=features)
        count(results)
        return _json(
            {
                "results": results,
                "model_version": results[0]["model_version"] if results else None,
                "latency_ms": results[0]["latency_ms"] if results else 0.0,
            }
        )

    @app.post(
        "/v1/features",
        response_model=FeaturesResponse,
        dependencies=v1,
        responses=_ERRORS,
    )
    def features_of(transaction: RawTransaction) -> Response:
        """The feature vector the service uses for a raw transaction (recorded like a scored
        one; no model needed): for debugging, parity checks and investigators."""
        try:
            return _json(scorer.features_many([transaction])[0])
        except InvalidTransaction as e:
            raise InvalidTransaction(e.errors) from e

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=v1, responses=_ERRORS)
    def feedback(label: FeedbackRequest) -> dict[str, Any]:
        """Record the bank's fraud / genuine verdict for a transaction the platform has seen."""
        return scorer.feedback(
            transaction_id=label.transaction_id,
            fraud=label.fraud,
            terminal_id=label.terminal_id,
            tx_time_seconds=label.tx_time_seconds,
            tx_datetime=label.tx_datetime,
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    def state() -> dict[str, Any]:
        try:
            return scorer._state_as_of()
        except FeatureStoreUnavailable as e:
            return {"error": str(e)}

    @app.get("/readyz", responses={503: {"description": "No model loaded yet."}})
    def readyz() -> JSONResponse:
        """Ready when a model is loaded; reports the served version and the registry state."""
        status = source.status()
        sync_metrics()
        body = {
            "status": "ready" if status.loaded else "not ready",
            "model_name": model_name,
            "model_version": status.version,
            "threshold": status.threshold,
            "registry": "reachable" if status.healthy else "unreachable",
            "registry_error": status.last_error,
            "last_registry_check": status.last_check.isoformat() if status.last_check else None,
            "last_registry_success": (
                status.last_success.isoformat() if status.last_success else None
            ),
            "feature_store": store_kind,
            "auth": "bearer" if token else "off",
            "online_state": state(),
        }
        if not status.loaded:
            body["detail"] = "no model loaded: " + (
                status.last_error or "the registry has not been polled yet"
            )
        return JSONResponse(status_code=200 if status.loaded else 503, content=body)

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics."""
        sync_metrics()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: everything from FRAUD_* environment variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(ServiceSettings())
