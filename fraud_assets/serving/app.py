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
    /desk/...                 the investigators' desk: HTML pages (`desk/routes.py`, docs/desk.md)

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

import contextlib
import functools
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraud_assets.serving.api_schemas import (
    _ERRORS,
    MAX_BATCH,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    FeaturesResponse,
    FeedbackRequest,
    FeedbackResponse,
    Reason,
    ScoreResponse,
    StateAsOf,
)
from fraud_assets.serving.desk.desk import Desk
from fraud_assets.serving.desk.routes import desk_router
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.metrics import LATENCY_BUCKETS, ServiceMetrics
from fraud_assets.serving.micro_batch import MicroBatcher
from fraud_assets.serving.middleware import _error, _errors_out, _MetricsMiddleware, _RoleGuard
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
from fraud_assets.serving.wiring import ModelPoller, build_scorer, redis_client

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_BATCH",
    "BatchRequest",
    "BatchResponse",
    "ErrorResponse",
    "FeaturesResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "Reason",
    "ScoreResponse",
    "ServiceMetrics",
    "StateAsOf",
    "app_from_env",
    "build_scorer",
    "create_app",
    "redis_client",
]

log = logging.getLogger(__name__)

# FastAPI's native OpenTelemetry, off unless FRAUD_OPENTELEMETRY is set: it looks up the global
# providers on every request even when none is configured.
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
MAX_MICRO_BATCH = 64  # concurrent /v1/score requests scored together at most


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

    def after_poll(swapped: bool) -> None:
        if swapped:
            gc.freeze()  # the new model's objects too (see lifespan)
        sync_metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.warn_if_insecure()
        poller = ModelPoller(source, interval, on_poll=after_poll).start()
        sync_metrics()
        # The ~400 k objects of the loaded libraries and model never die; left to the collector,
        # each full collection scans them all and stalls every request for ~0.2-1 s. Frozen,
        # they are skipped (a full collection then takes microseconds).
        gc.freeze()
        try:
            yield
        finally:
            batcher.close()
            await anyio.to_thread.run_sync(poller.stop)

    app = FastAPI(
        title="Fraud scoring API",
        version="1",
        description="Real-time card-fraud scoring with the registry's champion model. "
        'Decisions are "block" or "allow"; see the module docs of fraud_assets.serving.app.',
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
        max_body_size=settings.max_body_bytes,  # 413 before the body is read (Content-Length)
    )
    # The investigators' desk: its pages always answer (403 while FRAUD_INVESTIGATOR_TOKEN is
    # unset); it watches scoring only when the role is configured.
    desk = Desk(
        audit=LabelLog(settings.label_log_dir, prefix="audit"),
        budget=settings.desk_budget,
        registry=metrics.registry,
    )
    if settings.investigator_token is not None:
        scorer.observers.append(desk.observe)
    app.include_router(desk_router(scorer, desk, settings.investigator_token))
    app.state.desk = desk
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
