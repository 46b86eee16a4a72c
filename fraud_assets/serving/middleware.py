"""ASGI middleware of the scoring API: request metrics and the bearer-token role check, and the
error bodies they (and the API's handlers) answer with."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from fastapi.responses import Response

from fraud_assets.serving.metrics import ServiceMetrics


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
