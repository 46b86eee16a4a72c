"""Strict JSON request bodies: what Python's `json` lets through, refused with the field named.

    loads(body: bytes) -> Any        raises BodyError(loc, msg)
    StrictJSONRoute                  FastAPI route class whose JSON bodies go through `loads`

Python's decoder accepts NaN and Infinity, turns 1e400 into inf, keeps lone surrogates
("\\ud800") in strings and silently keeps the last of duplicate keys. Each of these once ended
in a 500 (an error response that could not be encoded) or in a value nobody sent on purpose.
Here each is a 422 whose `loc` names where it sits, e.g. ["body", "transactions", 2,
"tx_amount"]; bytes that are not UTF-8 or not JSON are a 422 at ["body"].
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 32  # deeper than any valid request; bounds the recursion below


def _safe(part: Any) -> Any:
    """A loc part that can always be encoded and is never large."""
    if isinstance(part, int):
        return part
    return str(part)[:64].encode("utf-8", "backslashreplace").decode("utf-8")


class BodyError(ValueError):
    def __init__(self, loc: list[Any], msg: str) -> None:
        self.loc, self.msg = [_safe(p) for p in loc], msg
        super().__init__(f"{'.'.join(map(str, loc)) or 'body'}: {msg}")

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": ["body", *self.loc], "msg": self.msg, "type": "json_invalid"}]


class _NonFinite(float):
    """Stands for NaN, Infinity or an overflowing number until its place is known."""

    text: str

    def __new__(cls, text: str) -> _NonFinite:
        value = super().__new__(cls, "nan")
        value.text = text
        return value


class _Duplicates(dict):
    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dupes = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
        marked = _Duplicates(out)
        marked.duplicates = dupes
        return marked
    return out


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _check_text(text: str, loc: list[Any], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError(loc, f"{what} holds an unpaired surrogate (\\ud800-\\udfff)") from None


def _walk(value: Any, loc: list[Any]) -> None:
    if len(loc) > MAX_DEPTH:
        raise BodyError(loc[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if isinstance(value, _Duplicates):
            raise BodyError([*loc, value.duplicates[0]], "duplicate key")
        for key, item in value.items():
            _check_text(key, [*loc, key], "the key")
            _walk(item, [*loc, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, [*loc, i])
    elif isinstance(value, _NonFinite):
        raise BodyError(loc, f"{value.text[:40]} is not a finite number")
    elif isinstance(value, str):
        _check_text(value, loc, "the text")


def loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BodyError([], f"not UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_pairs, parse_float=_float, parse_constant=_NonFinite
        )
    except json.JSONDecodeError as e:
        raise BodyError([], f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise BodyError([], "nested too deeply") from None
    _walk(value, [])
    return value


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads(await self.body())
            except BodyError as e:
                raise HTTPException(status_code=422, detail=e.detail()) from None
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
