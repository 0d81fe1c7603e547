"""What every request passes before the application reads it.

ASGI layer (``application`` in ``xbit_admin.asgi`` is wrapped by :func:`guarded`), whatever server runs
it — the servers themselves run with ``--no-proxy-headers``:

* **Client address.** ``X-Forwarded-For`` is believed only when the TCP peer is one of
  ``settings.TRUSTED_PROXIES`` (addresses or networks from the environment; none by default), and then
  the client is the right-most address in the chain that is not itself a trusted proxy (uvicorn's
  ``ProxyHeadersMiddleware`` does the parsing). Otherwise the client is the peer: a client that reaches
  the process directly cannot choose the address the API-key allow-lists, the per-IP throttles and the
  security events see.
* **Body size.** A body larger than ``settings.MAX_REQUEST_BODY_BYTES`` is answered 413
  ``REQUEST_TOO_LARGE`` before the application reads it (Django's ASGI handler would spool any size to
  disk first; a chunked body has no Content-Length to check).

Django layer (:class:`RequestGuardMiddleware`, early in ``MIDDLEWARE``):

* a NUL character in the path, the query string or a form body is a 400 (PostgreSQL refuses NUL in
  text: a console search ``q=a%00b`` was a 500);
* responses are ``Cache-Control: no-store`` unless the view said otherwise (every page and API answer
  carries personal or operational data; static files are served before this middleware);
* the general API rate limit's headers (``core.rate_limit``) are added to the API's answers;
* with ``DEBUG`` on, a 404 under ``/api/`` is the API's JSON error, not Django's HTML debug page.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from core.errors import ErrorCode, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"


def trusted_proxies() -> list[str]:
    """``TRUSTED_PROXIES`` validated: each an IP address or network (a typo must stop the process, not
    trust the world)."""
    entries = [str(entry).strip() for entry in getattr(settings, "TRUSTED_PROXIES", []) or []]
    for entry in entries:
        if entry == "*":
            raise ValueError(
                "TRUSTED_PROXIES must name the proxies; '*' would let every client choose its address"
            )
        if "/" in entry:
            ipaddress.ip_network(entry)  # strict, as uvicorn reads it: "10.0.0.5/24" is a typo
        else:
            ipaddress.ip_address(entry)
    return entries


def client_address_app(app: ASGIApp) -> ASGIApp:
    """``app`` seeing the real client: the peer, or the forwarded address when the peer is a trusted
    proxy. The trusted list is read per call, so tests (and ``override_settings``) change it live."""
    built: dict[tuple[str, ...], ASGIApp] = {}

    async def guarded_app(scope: Scope, receive: Receive, send: Send) -> None:
        proxies = tuple(trusted_proxies())
        if not proxies or scope.get("type") not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        wrapped = built.get(proxies)
        if wrapped is None:
            wrapped = built[proxies] = ProxyHeadersMiddleware(app, trusted_hosts=list(proxies))  # type: ignore[arg-type]
        await wrapped(scope, receive, send)

    return guarded_app


async def _answer_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            ErrorCode.REQUEST_TOO_LARGE,
            f"The request body is larger than {limit} bytes.",
            {"max_bytes": limit},
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def body_limit_app(app: ASGIApp) -> ASGIApp:
    """Refuse bodies above ``MAX_REQUEST_BODY_BYTES`` before the application reads them: at once when
    Content-Length says so, else while reading (the body is buffered up to the limit and replayed)."""

    async def limited_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        limit = int(settings.MAX_REQUEST_BODY_BYTES)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _answer_too_large(send, limit)
                    return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break  # http.disconnect: the application sees it as it would have
            size += len(message.get("body", b""))
            if size > limit:
                await _answer_too_large(send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await app(scope, replay, send)

    return limited_app


def guarded(app: ASGIApp) -> ASGIApp:
    return client_address_app(body_limit_app(app))


# --- Django middleware --------------------------------------------------------------------------------


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info or b"\x00" in unquote_to_bytes(request.META.get("QUERY_STRING", "")):
        return True
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.POST.lists())
    return False


def _refuse(request: HttpRequest, status: int, code: ErrorCode, message: str) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse(error_body(code, message), status=status)
    if status == 400:
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestGuardMiddleware:
    """See the module docstring (Django layer)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            response = _refuse(
                request, 400, ErrorCode.VALIDATION_ERROR, "The request contains a NUL character."
            )
        else:
            response = self.get_response(request)
            if (
                response.status_code == 404
                and settings.DEBUG
                and request.path_info.startswith(API_PREFIX)
                and not response.get("Content-Type", "").startswith("application/json")
            ):
                response = JsonResponse(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
        guard_response(request, response)
        return response


def guard_response(request: HttpRequest, response: HttpResponseBase) -> None:
    """The headers every answer gets here: the rate limit's, and ``no-store`` unless the view chose."""
    rate = getattr(request, "xbit_rate_limit", None)
    if rate is not None:
        for name, value in rate.headers().items():
            response.setdefault(name, value)
    if not response.has_header("Cache-Control"):
        response["Cache-Control"] = "no-store"
