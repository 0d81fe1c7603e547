"""The API's error responses in its OpenAPI schema.

Every rejection has the same body (``core.errors``: ``{"code", "message", "details"}``), so the
schema has one ``Error`` component (its ``code`` is the ``ErrorCode`` enum) and every operation lists
the error statuses it can answer, each with the codes behind it:

* the ones that follow from how the view is built, added by ``error_responses_hook`` (a
  drf-spectacular postprocessing hook): 401 from its authentication schemes, 403 from its permission
  classes, 400 on every operation (a NUL character in the path or query, ``request_guard``; and the body's
  or the query's serializer), 413 when it reads a request body (``MAX_REQUEST_BODY_BYTES``), 404 for a
  path parameter or a pagination cursor, 429 when it is throttled — with the ``RateLimit-*`` headers of
  the general rate limit on its answers (``core.rate_limit``) — and 503 ``MAINTENANCE`` on every
  trader operation (``api_mode``, spec 10);
* the ones its services raise, declared on the view method with ``@api_errors(...)``; their status is
  the one the exception handler uses (``errors.error_status``) unless the declaration says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, TypeVar

from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

from core.accounts.authentication import ApiKeyAuthentication, JWTAuthentication
from core.accounts.permissions import InteractiveSession, KeyScope, StaffPermission
from core.errors import ErrorCode, error_status
from core.rate_limit import ApiRateLimit
from core.switches.middleware import API_PREFIX, OPS_PREFIX

F = TypeVar("F", bound=Callable[..., Any])
Declared = ErrorCode | tuple[ErrorCode, int]

ERROR_COMPONENT = "Error"
ERROR_REF = f"#/components/schemas/{ERROR_COMPONENT}"
_ATTRIBUTE = "_xbit_api_errors"

E = ErrorCode
# What a failed authentication answers (always 401: the handler maps every authentication failure there).
_AUTHENTICATION_ERRORS: dict[type, tuple[ErrorCode, ...]] = {
    JWTAuthentication: (E.NOT_AUTHENTICATED, E.INVALID_TOKEN, E.TOKEN_EXPIRED),
    ApiKeyAuthentication: (
        E.NOT_AUTHENTICATED,
        E.INVALID_SIGNATURE,
        E.TIMESTAMP_EXPIRED,
        E.TIMESTAMP_IN_FUTURE,
        E.REPLAYED_REQUEST,
        E.API_KEY_REVOKED,
    ),
    SessionAuthentication: (E.NOT_AUTHENTICATED,),
}
# What a refused permission answers (403). IsAuthenticated refuses with NotAuthenticated (401, above).
_PERMISSION_ERRORS: dict[type, tuple[ErrorCode, ...]] = {
    AllowAny: (),
    IsAuthenticated: (),
    KeyScope: (E.API_KEY_PERMISSION,),
    InteractiveSession: (E.API_KEY_PERMISSION,),
    StaffPermission: (E.PERMISSION_DENIED, E.OTP_REQUIRED),
}
_TITLES = {400: "The request is invalid", 502: "The venue refused or did not answer"}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (rate limits, maintenance).",
        "schema": {"type": "integer"},
    }
}
# The general rate limit's answer headers (core.rate_limit): the tightest of the request's
# budgets (per API key, per user, per address; orders, reads and other writes apart).
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {
        "description": "Requests this budget allows in a burst (the tightest of key, user and address).",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in that budget now.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until that budget is full again.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Policy": {
        "description": "The budget: `limit;w=period seconds;budget=orders|reads|writes;scope=key|user|ip`.",
        "schema": {"type": "string"},
    },
}


def api_errors(*codes: Declared) -> Callable[[F], F]:
    """Declare the errors a view method's services can answer, beyond the ones its construction
    implies (see the module docstring). ``(code, status)`` when the raiser overrides the status."""

    def decorate(method: F) -> F:
        setattr(method, _ATTRIBUTE, tuple(codes))
        return method

    return decorate


def error_schemas() -> dict[str, Any]:
    return {
        "ErrorCode": {
            "type": "string",
            "enum": [code.value for code in ErrorCode],
            "description": "Stable error codes: clients switch on these, never on the message.",
        },
        ERROR_COMPONENT: {
            "type": "object",
            "description": "Every error the API answers has this body.",
            "properties": {
                "code": {"$ref": "#/components/schemas/ErrorCode"},
                "message": {"type": "string", "description": "For people; may change."},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Machine-readable context: for VALIDATION_ERROR, `fields` maps "
                    "each invalid field to its messages.",
                },
            },
            "required": ["code", "message", "details"],
        },
    }


def _classes(view: type, name: str) -> list[type]:
    return [c if isinstance(c, type) else type(c) for c in getattr(view, name, ()) or ()]


def _generic_errors(
    path: str, method: str, operation: dict[str, Any], view: type | None
) -> list[tuple[ErrorCode, int]]:
    out: list[tuple[ErrorCode, int]] = []

    def add(codes: Iterable[ErrorCode], status: int) -> None:
        out.extend((code, status) for code in codes)

    authenticators = _classes(view, "authentication_classes") if view else []
    permissions = _classes(view, "permission_classes") if view else []
    anonymous = all(issubclass(p, AllowAny) for p in permissions)
    if authenticators and not anonymous:
        for authenticator in authenticators:
            for cls, codes in _AUTHENTICATION_ERRORS.items():
                if issubclass(authenticator, cls):
                    add(codes, 401)
        if any(issubclass(a, ApiKeyAuthentication) for a in authenticators):
            add((E.IP_NOT_ALLOWED,), 403)  # the key's IP allow-list
        if any(issubclass(a, SessionAuthentication) for a in authenticators) and method.upper() not in (
            SAFE_METHODS
        ):
            add((E.PERMISSION_DENIED,), 403)  # CSRF
        for permission in permissions:
            known = next(
                (codes for cls, codes in _PERMISSION_ERRORS.items() if issubclass(permission, cls)), None
            )
            add(known if known is not None else (E.PERMISSION_DENIED,), 403)
    parameters = operation.get("parameters", [])
    # a NUL character anywhere in the path or query (RequestGuardMiddleware), the body's or the query's
    # serializer refused a field, or the body does not parse
    add((E.VALIDATION_ERROR,), 400)
    if "requestBody" in operation:
        add((E.REQUEST_TOO_LARGE,), 413)
    if any(p.get("in") == "path" for p in parameters):
        add((E.NOT_FOUND,), 404)
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        add((E.NOT_FOUND,), 404)  # DRF's cursor pagination answers an invalid cursor with NotFound
    if view is not None and _classes(view, "throttle_classes"):
        add((E.RATE_LIMITED,), 429)
    if path.startswith(API_PREFIX) and not path.startswith(OPS_PREFIX):
        add((E.MAINTENANCE,), 503)  # ApiModeMiddleware, api_mode MAINTENANCE
    return out


def _declared_errors(view: type | None, method: str) -> list[tuple[ErrorCode, int]]:
    handler = getattr(view, method.lower(), None) if view is not None else None
    declared: tuple[Declared, ...] = getattr(handler, _ATTRIBUTE, ())
    return [item if isinstance(item, tuple) else (item, error_status(item)) for item in declared]


def _response(status: int, codes: list[ErrorCode], previous: dict[str, Any] | None) -> dict[str, Any]:
    title = _TITLES.get(status) or HTTPStatus(status).phrase
    listed = ", ".join(f"`{code.value}`" for code in codes)
    description = f"{title}. Error codes: {listed}." if codes else (previous or {}).get("description", title)
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if status in (429, 503):
        response["headers"] = dict(_RETRY_AFTER)
    return response


NO_NUL = "^[^\\x00]*$"


def _strings_without_nul(schema: Any) -> None:
    """Every free-form string a client sends excludes the NUL character (the API refuses it anywhere,
    ``request_guard`` / ``StrictJSONParser``: PostgreSQL cannot store it), said as a ``pattern``."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "string" and not ({"pattern", "enum", "format"} & node.keys()):
            node["pattern"] = NO_NUL
        for key in ("properties", "items", "oneOf", "anyOf", "allOf", "additionalProperties"):
            child = node.get(key)
            stack.extend(child.values() if key == "properties" and isinstance(child, dict) else [child])


def error_responses_hook(
    result: dict[str, Any], generator: Any, request: Any, public: bool, **_: Any
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the ``Error`` component, and on every operation one
    response per error status it can answer, listing the codes (generic ones first)."""
    views = {(path, method.lower()): callback.cls for path, _, method, callback in generator.endpoints}
    result.setdefault("components", {}).setdefault("schemas", {}).update(error_schemas())
    for name, component in result["components"]["schemas"].items():
        if name.endswith("Request"):  # COMPONENT_SPLIT_REQUEST: what clients send
            _strings_without_nul(component)
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                for parameter in operation.get("parameters", []):
                    _strings_without_nul(parameter.get("schema"))
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    _strings_without_nul(media.get("schema"))
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            view = views.get((path, method))
            by_status: dict[int, list[ErrorCode]] = {}
            for code, status in _generic_errors(path, method, operation, view) + _declared_errors(
                view, method
            ):
                codes = by_status.setdefault(status, [])
                if code not in codes:
                    codes.append(code)
            responses = operation["responses"]
            # an error status an annotation wrote by hand gets the Error body too
            for key in [k for k in responses if k.isdigit() and int(k) >= 400]:
                by_status.setdefault(int(key), [])
            for status in sorted(by_status):
                responses[str(status)] = _response(status, by_status[status], responses.get(str(status)))
            if view is not None and any(
                issubclass(t, ApiRateLimit) for t in _classes(view, "throttle_classes")
            ):
                for response in responses.values():
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
            operation["responses"] = dict(sorted(responses.items()))
    return result
