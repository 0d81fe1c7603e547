"""The order lane: ``POST /api/v1/orders`` answered without Django's middleware chain and DRF's dispatch.

Measured before it was built (py-spy, in-process ASGI, one internal market order at a time): of the web
process's ~5.2 ms of CPU per order, the order service took ~2.5 ms and the frame around it ~2.7 ms —
the middleware chain, Django's handler, DRF's dispatch and its serializer (~0.5 ms alone), none of which
does anything for a token-signed JSON order. The lane does only what that request needs, with the same
code the full path uses for each part, and in one hop to a worker thread:

* the same authenticators, permission classes and rate limit as DRF runs (``REST_FRAMEWORK``
  settings, ``OrdersApi``'s own attributes), the same order function (``order_place_validated``), the
  same output serializer and renderer, the same error handler;
* the same response headers: the response phase of the header middlewares in ``MIDDLEWARE``
  (security, CSP, common, X-Frame-Options) and ours (``guard_response``, ``request_done``);
* the same request context (request id, log context, metrics per route).

It takes a request only when nothing but that can happen to it: exactly ``POST /api/v1/orders`` with no
query string, a JSON body whose every field already has the type and form the input serializer accepts
(``lane_body``), API mode NORMAL, credentials present, the host allowed, no SSL redirect due, and only
the middlewares it knows in ``MIDDLEWARE``. Everything else — a malformed body, a missing field, an
unknown key, maintenance or reduce-only mode — goes to Django unchanged, before anything was spent, so
every refusal of a malformed request is the full path's own. ``ORDER_LANE = False`` turns it off; a
test sends the same requests both ways and compares status, body and headers."""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Callable
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from django.db import connections
from django.http import HttpResponse, HttpResponseBase
from django.urls import resolve
from django.utils.module_loading import import_string
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from core.accounts.selectors import request_user
from core.api_input import DecimalStringField
from core.money import DecimalInputError, decimal_from_text
from core.observability import request_context, request_done
from core.request_guard import guard_response
from core.switches import store
from core.threads import LoopThreads
from trading.api.orders import OrderInputSerializer, OrderOutput, OrdersApi, order_place_validated

PATH = "/api/v1/orders"
_JSON_TYPES = {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}

# Middlewares whose request phase does nothing for a token-signed JSON order (sessions, CSRF — DRF checks
# it only for session authentication —, cookie authentication, OTP, messages, static files), those whose
# response phase the lane runs for their headers, and ours, whose parts it calls itself. Any other entry
# in MIDDLEWARE turns the lane off until someone has decided what it means for an order.
_SKIPPED = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.switches.middleware.ApiModeMiddleware",  # the lane takes NORMAL mode only
}
_HEADERS = {
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
}
_OURS = {"core.observability.RequestContextMiddleware", "core.request_guard.RequestGuardMiddleware"}


# --- the body ---------------------------------------------------------------------------------------------
# The rules are read from OrderInputSerializer's own fields (types, choices, bounds, defaults, nulls), so a
# change to the serializer changes the lane with it; a field of a kind the lane does not know turns it off.


def _text(value: Any, max_length: int | None) -> str | None:
    """A string the serializer's CharField keeps as it is (no trimming, no NUL, no surrogate, not blank)."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= (max_length or 10_000)
        or value != value.strip()
        or "\x00" in value
        or any("\ud800" <= ch <= "\udfff" for ch in value)
    ):
        return None
    return value


_MISSING = object()
_BIGINT = 2**63 - 1


def _rule(field: serializers.Field) -> Callable[[Any], Any] | None:
    """A check of one JSON value against ``field``: the value the serializer would give, or _MISSING
    when the serializer might answer anything else (a refusal, a coercion). None: a field kind the lane
    does not know."""
    if isinstance(field, DecimalStringField):

        def decimal(value: Any) -> Any:
            if not isinstance(value, str) or len(value) > (field.max_length or 40):
                return _MISSING
            try:
                number = decimal_from_text(
                    value, field.shape, signed=field.signed, allow_zero=field.allow_zero
                )
            except DecimalInputError:
                return _MISSING
            low = field.min_value_decimal
            return _MISSING if low is not None and number < low else number

        return decimal
    if isinstance(field, serializers.ChoiceField):
        choices = frozenset(key for key in field.choices if isinstance(key, str))
        return lambda value: value if isinstance(value, str) and value in choices else _MISSING
    if isinstance(field, serializers.BooleanField):
        return lambda value: value if isinstance(value, bool) else _MISSING
    if isinstance(field, serializers.IntegerField):
        low = -_BIGINT if field.min_value is None else int(field.min_value)
        high = _BIGINT if field.max_value is None else int(field.max_value)
        return lambda value: (
            value
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
            else _MISSING
        )
    if type(field) is serializers.CharField and field.trim_whitespace and not field.allow_blank:
        limit = field.max_length

        def text(value: Any) -> Any:
            checked = _text(value, limit)
            return _MISSING if checked is None else checked

        return text
    return None


# the validators DRF adds to these fields by themselves, which the rules above already apply
_JUDGED_VALIDATORS = (
    ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
    MaxLengthValidator,
    MinValueValidator,
    MaxValueValidator,
)


@functools.cache
def _body_rules() -> dict[str, tuple[Callable[[Any], Any], serializers.Field]] | None:
    rules = {}
    for name, field in OrderInputSerializer().fields.items():
        check = _rule(field)
        if check is None or not all(isinstance(v, _JUDGED_VALIDATORS) for v in field.validators):
            return None  # a kind of field (or a validator) the lane cannot judge: Django takes every order
        rules[name] = (check, field)
    return rules


def lane_body(raw: bytes) -> dict[str, Any] | None:
    """The order body as ``OrderInputSerializer`` would validate it, or None when the serializer might
    answer anything else (then the full path answers it). Stricter than the serializer, never looser:
    exact JSON types only (DRF's coercions — ``"5"`` for an integer, ``2.0``, ``"true"`` — are left to
    DRF), no unknown keys, a null only where the field allows it."""
    rules = _body_rules()
    if rules is None:
        return None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not body.keys() <= rules.keys():
        return None
    out: dict[str, Any] = {}
    for name, (check, field) in rules.items():
        value = body.get(name, _MISSING)
        if value is _MISSING:
            if field.required:
                return None
            if field.default is not serializers.empty:
                out[name] = field.get_default()
            continue
        if value is None:
            if not field.allow_null:
                return None
            out[name] = None
            continue
        checked = check(value)
        if checked is _MISSING:
            return None
        out[name] = checked
    return out


# --- the lane ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """What the lane builds once from settings: the header middlewares and the route's name."""

    request_phase: tuple[Any, ...]  # middlewares whose process_request may refuse or redirect
    response_phase: tuple[Any, ...]  # innermost first, as Django runs them
    route: str


class _SettledCsp:
    """``CSPMiddleware``'s response phase for the lane's answers. The policy it writes depends on the
    settings alone when neither the request nor the response carries its own (a nonce, a decorator's
    ``_csp_*`` attributes, a header already set): building it was ~2 % of an order's CPU. So the first
    such answer goes through the middleware and the headers it added are kept, under the policy settings
    they came from (the objects, so ``override_settings`` starts again); the next ones get the same
    headers. Anything else goes through the middleware."""

    _ATTRS = ("_csp_exempt", "_csp_exempt_ro", "_csp_config", "_csp_update", "_csp_replace")
    _ATTRS += ("_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")
    _HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")

    def __init__(self, middleware: Any) -> None:
        self._middleware = middleware
        self._kept: tuple[tuple[Any, ...], list[tuple[str, str]]] | None = None

    def process_request(self, request: Any) -> None:  # the request phase is the middleware's own
        self._middleware.process_request(request)

    def process_response(self, request: Any, response: HttpResponseBase) -> HttpResponseBase:
        plain = (
            getattr(request, "_csp_nonce", None) is None
            and not any(hasattr(response, name) for name in self._ATTRS)
            and not any(name in response for name in self._HEADERS)
        )
        if not plain:
            return self._middleware.process_response(request, response)
        key = (
            getattr(settings, "CONTENT_SECURITY_POLICY", None),
            getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None),
            settings.DEBUG,
            response.status_code,
            request.path_info,
        )
        kept = self._kept
        if kept is not None and kept[0][0] is key[0] and kept[0][1] is key[1] and kept[0][2:] == key[2:]:
            for name, value in kept[1]:
                response[name] = value
            return response
        response = self._middleware.process_response(request, response)
        if getattr(request, "_csp_nonce", None) is None:  # the policy asked for no nonce
            self._kept = (key, [(name, response[name]) for name in self._HEADERS if name in response])
        return response


def _frame() -> _Frame | None:
    names = list(settings.MIDDLEWARE)
    if not set(names) <= _SKIPPED | _HEADERS | _OURS:
        return None
    headers = [import_string(name)(_no_response) for name in names if name in _HEADERS]
    headers = [_SettledCsp(m) if type(m) is CSPMiddleware else m for m in headers]
    return _Frame(
        request_phase=tuple(m for m in headers if hasattr(m, "process_request")),
        response_phase=tuple(reversed([m for m in headers if hasattr(m, "process_response")])),
        route=resolve(PATH).route,
    )


def _no_response(request: Any) -> HttpResponse:  # a header middleware's get_response, never called
    raise AssertionError("the order lane calls middlewares' phases, not their chain")


class _FallThrough(Exception):
    """Nothing was spent yet: the full path answers this request."""


_lane_threads = LoopThreads("order-lane", default_workers=8)
taken = 0  # requests the lane answered (tests read it)


def close_connections() -> None:
    """Each lane thread closes its database connections (a test, before its database is dropped)."""
    _lane_threads.on_each(connections.close_all)


def _wants(scope: dict[str, Any]) -> bool:
    if scope.get("method") != "POST" or scope.get("path") != PATH or scope.get("query_string"):
        return False
    if not getattr(settings, "ORDER_LANE", True):
        return False
    content_type = b""
    credentials = False
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            content_type = value.lower()
        elif name == b"authorization":
            credentials = credentials or value.startswith(b"Bearer ")
        elif name == b"x-xbit-apikey":
            credentials = True
    return credentials and content_type in _JSON_TYPES


def order_lane(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app`` (Django's HTTP handler) with the order lane in front of it (module docstring)."""
    built: list[_Frame | None] = []

    async def lane(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not _wants(scope):
            await app(scope, receive, send)
            return
        if not built:
            built.append(_frame())
        frame = built[0]
        messages: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        while True:  # the body (already bounded by core.request_guard's body limit)
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        body = b"".join(chunks)
        fields = lane_body(body) if frame is not None and messages[-1]["type"] == "http.request" else None
        if frame is None or fields is None:
            await app(scope, replay, send)
            return
        context = copy_context()
        try:
            response = await _lane_threads.run(context.run, _answer, frame, scope, body, fields)
        except _FallThrough:
            await app(scope, replay, send)
            return
        global taken
        taken += 1
        # as Django's ASGIHandler.send_response encodes them: names as written, then the cookies
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
        headers += [
            (b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()
        ]
        content = response.content  # type: ignore[attr-defined]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    return lane


def _answer(frame: _Frame, scope: dict[str, Any], body: bytes, fields: dict[str, Any]) -> HttpResponseBase:
    """The request, on a worker thread: Django's request signals around it, as its handler sends them."""
    signals.request_started.send(sender=_answer, scope=scope)
    try:
        if store.api_mode() != store.API_OPEN:
            raise _FallThrough  # ApiModeMiddleware's maintenance and reduce-only answers
        request = ASGIRequest(scope, io.BytesIO(body))
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
        except Exception:  # DisallowedHost and the like: Django answers them
            raise _FallThrough from None
        for middleware in frame.request_phase:
            if middleware.process_request(request) is not None:  # an SSL redirect is due, say
                raise _FallThrough
        with request_context(request):
            started = time.perf_counter()
            try:
                response = _order(request, fields)
            except Exception as exc:  # not an API error: Django's own 500 and its log
                response = response_for_exception(request, exc)
            for middleware in frame.response_phase:
                response = middleware.process_response(request, response)
            guard_response(request, response)
            request_done(request, response, frame.route, time.perf_counter() - started)
            return response
    finally:
        signals.request_finished.send(sender=_answer)


def _order(request: ASGIRequest, fields: dict[str, Any]) -> HttpResponseBase:
    """``APIView.dispatch`` for ``OrdersApi.post`` with the body already validated: content negotiation,
    authentication, permissions and throttles (``initial``), the order, DRF's exception handling and
    response finalisation — DRF's own methods, so answers and headers are the full path's."""
    view = OrdersApi()
    view.setup(request)  # as View.as_view's function does (HEAD answered as GET: the Allow header)
    drf = view.initialize_request(request)
    view.request = drf
    view.headers = view.default_response_headers
    try:
        view.initial(drf)
        order = order_place_validated(request_user(drf), fields)
        response = Response(OrderOutput(order).data, status=201)
    except Exception as exc:  # DRF's handle_exception re-raises what it does not answer
        response = view.handle_exception(exc)
    response = view.finalize_response(drf, response)
    response.render()
    return response


__all__ = ["lane_body", "order_lane"]
