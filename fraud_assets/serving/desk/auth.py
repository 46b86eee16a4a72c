"""The investigator role: FRAUD_INVESTIGATOR_TOKEN signs an investigator in, a session cookie
carries who they are.

The cookie is `name|expires|hmac` with HMAC-SHA256 keyed by the token, so changing the token
signs everyone out, and the token itself never travels after the login form. HttpOnly,
SameSite=Strict (no cross-site form can post a decision). A scripted client may instead send
`Authorization: Bearer <investigator token>` with an `X-Investigator` name. Without a configured
token every desk page and action is refused (403); with it, a request without a valid session
is refused (401, the login page).
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE = "fraud_desk"
SESSION_SECONDS = 8 * 3600
MAX_NAME = 64


class NotInvestigator(Exception):
    """The request does not carry the investigator role. `status`: 401 or 403."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def clean_name(name: str) -> str:
    name = " ".join(name.split())[:MAX_NAME]
    if not name or "|" in name:
        raise ValueError("a name without '|' is needed")
    return name


def _sign(token: str, payload: str) -> str:
    return hmac.new(token.encode(), payload.encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, name: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    payload = f"{clean_name(name)}|{expires}"
    return f"{payload}|{_sign(token, payload)}"


def token_matches(token: str | None, presented: str) -> bool:
    return token is not None and hmac.compare_digest(presented.encode(), token.encode())


def investigator(
    token: str | None,
    cookie: str | None,
    authorization: str | None = None,
    name_header: str | None = None,
    now: float | None = None,
) -> str:
    """The signed-in investigator's name, or NotInvestigator."""
    if token is None:
        raise NotInvestigator(
            403, "the investigators' desk is closed: FRAUD_INVESTIGATOR_TOKEN is not configured"
        )
    if authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and token_matches(token, presented.strip()):
            return clean_name(name_header or "api")
        raise NotInvestigator(403, "this token does not carry the investigator role")
    if cookie:
        name, _, rest = cookie.partition("|")
        expires, _, signature = rest.partition("|")
        expected = _sign(token, f"{name}|{expires}")
        if (
            hmac.compare_digest(signature.encode(), expected.encode())
            and expires.isdigit()
            and int(expires) > (now or time.time())
        ):
            return name
    raise NotInvestigator(401, "sign in as an investigator")
