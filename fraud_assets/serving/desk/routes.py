"""The desk's pages: server-rendered HTML (Jinja2 templates beside this module), plain forms.

GET  /desk/login                  sign-in form (name + investigator token)
POST /desk/login                  -> session cookie, 303 to /desk
POST /desk/logout
GET  /desk?day=YYYY-MM-DD         the day's queue (default: the newest day with alerts)
GET  /desk/cards/{card}?day=      score, top reasons, recent transactions, terminals
POST /desk/cards/{card}/decision  form: day, decision (fraud|genuine|needs_info), note
GET  /desk/audit                  the newest audit records
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from fraud_assets.serving.desk.auth import (
    COOKIE,
    SESSION_SECONDS,
    NotInvestigator,
    investigator,
    session_cookie,
    token_matches,
)
from fraud_assets.serving.desk.desk import Desk, Verdict
from fraud_assets.serving.scoring import InvalidTransaction, Scorer, UnknownTransaction

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
MAX_NOTE = 2000


def _day(value: str | None, desk: Desk) -> dt.date | None:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return desk.newest_day()


def desk_router(scorer: Scorer, desk: Desk, token: str | None) -> APIRouter:
    router = APIRouter(prefix="/desk", include_in_schema=False)

    def who(request: Request) -> str:
        return investigator(
            token,
            request.cookies.get(COOKIE),
            request.headers.get("authorization"),
            request.headers.get("x-investigator"),
        )

    def refused(request: Request, e: NotInvestigator) -> Response:
        return TEMPLATES.TemplateResponse(
            request, "login.html", {"error": e.detail, "closed": e.status == 403}, e.status
        )

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        closed = token is None
        error = "FRAUD_INVESTIGATOR_TOKEN is not configured" if closed else None
        status = 403 if closed else 200
        return TEMPLATES.TemplateResponse(
            request, "login.html", {"error": error, "closed": closed}, status
        )

    @router.post("/login")
    def login(
        request: Request,
        name: Annotated[str, Form(max_length=200)],
        secret: Annotated[str, Form(max_length=500)],
    ) -> Response:
        if token is None:
            return refused(request, NotInvestigator(403, "the desk is closed"))
        if not token_matches(token, secret):
            return refused(request, NotInvestigator(401, "wrong investigator token"))
        try:
            cookie = session_cookie(token, name)
        except ValueError as e:
            return refused(request, NotInvestigator(401, f"name: {e}"))
        response = RedirectResponse("/desk", status_code=303)
        response.set_cookie(
            COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict"
        )
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/desk/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @router.get("", response_class=HTMLResponse)
    def queue(
        request: Request,
        day: Annotated[str | None, Query(max_length=10)] = None,
        k: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> Response:
        try:
            name = who(request)
        except NotInvestigator as e:
            return refused(request, e)
        chosen = _day(day, desk)
        entries = desk.queue(chosen, k) if chosen else []
        context = {
            "investigator": name,
            "day": chosen,
            "days": desk.days()[:30],
            "entries": entries,
            "budget": k or desk.budget,
            "depth": len(desk.queue(chosen, 10**9)) if chosen else 0,
        }
        return TEMPLATES.TemplateResponse(request, "queue.html", context)

    @router.get("/cards/{card}", response_class=HTMLResponse)
    def card_page(
        request: Request, card: int, day: Annotated[str | None, Query(max_length=10)] = None
    ) -> Response:
        try:
            name = who(request)
        except NotInvestigator as e:
            return refused(request, e)
        chosen = _day(day, desk)
        if chosen is None:
            return HTMLResponse("no such day", status_code=404)
        recent, alerts, decided = desk.card(card, chosen)
        if not recent:
            return HTMLResponse(f"card {card} is not held by the desk", status_code=404)
        top = max(
            (s for s in recent if alerts and s.transaction_id in alerts.alerts),
            key=lambda s: s.score,
            default=recent[0],
        )
        terminals: dict[int, dict[str, Any]] = {}
        for s in recent:
            t = terminals.setdefault(s.terminal, {"terminal": s.terminal, "transactions": 0})
            t["transactions"] += 1
            t.setdefault("risk_7d", s.features.get("terminal_risk_7d"))
            t.setdefault("confirmed_7d", s.features.get("terminal_confirmed_fraud_7d"))
        feature_names = list(top.features)
        context = {
            "investigator": name,
            "card": card,
            "day": chosen,
            "alerts": alerts,
            "decided": decided,
            "top": top,
            "reasons": _reasons(scorer, top.features),
            "recent": recent,
            "feature_names": feature_names,
            "terminals": list(terminals.values()),
            "verdicts": [v.value for v in Verdict],
        }
        return TEMPLATES.TemplateResponse(request, "card.html", context)

    @router.post("/cards/{card}/decision")
    def decide(
        request: Request,
        card: int,
        day: Annotated[str, Form(max_length=10)],
        decision: Annotated[Verdict, Form()],
        note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
    ) -> Response:
        try:
            name = who(request)
        except NotInvestigator as e:
            return refused(request, e)
        chosen = _day(day, desk)
        if chosen is None:
            return HTMLResponse("day: not a date (YYYY-MM-DD)", status_code=422)

        def label(transaction_id: int, fraud: bool, source: str) -> None:
            with contextlib.suppress(UnknownTransaction):  # no longer held online: no label
                scorer.feedback(transaction_id=transaction_id, fraud=fraud, source=source)

        try:
            desk.decide(card, chosen, decision, note.strip(), name, label)
        except LookupError as e:
            return HTMLResponse(str(e), status_code=404)
        except InvalidTransaction as e:
            return HTMLResponse(str(e), status_code=422)
        return RedirectResponse(f"/desk?day={chosen.isoformat()}", status_code=303)

    @router.get("/audit", response_class=HTMLResponse)
    def audit(request: Request) -> Response:
        try:
            name = who(request)
        except NotInvestigator as e:
            return refused(request, e)
        context = {"investigator": name, "records": desk.audit_records()}
        return TEMPLATES.TemplateResponse(request, "audit.html", context)

    return router


def _reasons(scorer: Scorer, features: dict[str, float]) -> list[dict[str, Any]]:
    """The top SHAP reasons of the served model for this vector, as /v1/score?explain gives."""
    from fraud_assets.serving.scoring import _top_reasons

    loaded = scorer.model_source.current
    if loaded is None or any(n not in features for n in loaded.feature_names):
        return []
    x = np.array([[features[n] for n in loaded.feature_names]], dtype=np.float64)
    return _top_reasons(loaded, x)[0]
