"""One error type with stable codes, and the DRF handler that renders it.

Every rejection the API gives a client is ``{"code": "...", "message": "...", "details": {...}}``.
Codes are an enum so tests assert on them and clients can switch on them.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from redis.exceptions import RedisError
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    # generic
    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RATE_LIMITED = "RATE_LIMITED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    MAINTENANCE = "MAINTENANCE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # authentication
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    OTP_REQUIRED = "OTP_REQUIRED"
    INVALID_OTP = "INVALID_OTP"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    TIMESTAMP_EXPIRED = "TIMESTAMP_EXPIRED"
    TIMESTAMP_IN_FUTURE = "TIMESTAMP_IN_FUTURE"
    REPLAYED_REQUEST = "REPLAYED_REQUEST"
    API_KEY_REVOKED = "API_KEY_REVOKED"
    API_KEY_PERMISSION = "API_KEY_PERMISSION"
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    # trader accounts
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    INVALID_CODE = "INVALID_CODE"
    CODE_EXPIRED = "CODE_EXPIRED"
    SIWE_INVALID = "SIWE_INVALID"
    SIWE_DOMAIN_MISMATCH = "SIWE_DOMAIN_MISMATCH"
    SIWE_NONCE_INVALID = "SIWE_NONCE_INVALID"
    SIWE_EXPIRED = "SIWE_EXPIRED"
    WALLET_IN_USE = "WALLET_IN_USE"
    KYC_LIMIT_EXCEEDED = "KYC_LIMIT_EXCEEDED"
    # money
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    UNKNOWN_ASSET = "UNKNOWN_ASSET"
    UNKNOWN_CHAIN = "UNKNOWN_CHAIN"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    ADDRESS_BLACKLISTED = "ADDRESS_BLACKLISTED"
    ADDRESS_NOT_WHITELISTED = "ADDRESS_NOT_WHITELISTED"
    DUPLICATE_WITHDRAWAL = "DUPLICATE_WITHDRAWAL"
    WITHDRAWALS_DISABLED = "WITHDRAWALS_DISABLED"
    FOUR_EYES_REQUIRED = "FOUR_EYES_REQUIRED"
    INVALID_STATE = "INVALID_STATE"
    CHAIN_DISABLED = "CHAIN_DISABLED"
    # trading (spec 02)
    INVALID_SIZE = "INVALID_SIZE"
    INVALID_PRICE = "INVALID_PRICE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    LEVERAGE_EXCEEDED = "LEVERAGE_EXCEEDED"
    SYMBOL_SUSPENDED = "SYMBOL_SUSPENDED"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    USER_RESTRICTED = "USER_RESTRICTED"
    RESERVE_INSUFFICIENT = "RESERVE_INSUFFICIENT"
    NO_ROUTE = "NO_ROUTE"
    MARKET_HALTED = "MARKET_HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    STALE_PRICE = "STALE_PRICE"
    VENUE_ERROR = "VENUE_ERROR"
    # trader streams (websocket error frames)
    BAD_MESSAGE = "BAD_MESSAGE"
    BAD_SUBSCRIPTION = "BAD_SUBSCRIPTION"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    RESUME_TOO_OLD = "RESUME_TOO_OLD"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    SCHEDULE_TOO_SOON = "SCHEDULE_TOO_SOON"
    INVALID_TRIGGER = "INVALID_TRIGGER"


_DEFAULT_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.TIMESTAMP_EXPIRED: 401,
    ErrorCode.TIMESTAMP_IN_FUTURE: 401,
    ErrorCode.REPLAYED_REQUEST: 401,
    ErrorCode.API_KEY_REVOKED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.API_KEY_PERMISSION: 403,
    ErrorCode.IP_NOT_ALLOWED: 403,
    ErrorCode.EMAIL_NOT_VERIFIED: 403,
    ErrorCode.SIWE_INVALID: 401,
    ErrorCode.SIWE_DOMAIN_MISMATCH: 401,
    ErrorCode.SIWE_NONCE_INVALID: 401,
    ErrorCode.SIWE_EXPIRED: 401,
    ErrorCode.WALLET_IN_USE: 409,
    ErrorCode.KYC_LIMIT_EXCEEDED: 403,
    ErrorCode.OTP_REQUIRED: 403,
    ErrorCode.USER_RESTRICTED: 403,
    ErrorCode.ACCOUNT_LOCKED: 423,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.DUPLICATE_WITHDRAWAL: 409,
    ErrorCode.FOUR_EYES_REQUIRED: 409,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.MAINTENANCE: 503,
    ErrorCode.MARKET_HALTED: 503,
    ErrorCode.NO_ROUTE: 503,
    ErrorCode.STALE_PRICE: 503,  # no live price or book yet: retry shortly (every raiser says 503)
    ErrorCode.VENUE_ERROR: 502,
    ErrorCode.INTERNAL_ERROR: 500,
}


def error_status(code: ErrorCode) -> int:
    """The HTTP status an error code answers with unless the raiser gives another (the OpenAPI schema
    documents each operation's errors with it, ``core.api_schema``)."""
    return _DEFAULT_STATUS.get(code, 400)


class ApplicationError(Exception):
    """A business rule said no. Raised by services; rendered by the DRF handler and the console."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.http_status = http_status or error_status(code)

    def as_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"ApplicationError({self.code!s}, {self.message!r})"


def error_body(code: ErrorCode | str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": str(code), "message": message, "details": details or {}}


def _flatten_validation(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {key: _flatten_validation(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [
            str(item) if not isinstance(item, dict | list) else _flatten_validation(item) for item in detail
        ]  # type: ignore[return-value]
    return str(detail)  # type: ignore[return-value]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        response = Response(exc.as_dict(), status=exc.http_status)
        if exc.code == ErrorCode.RATE_LIMITED and "retry_after" in exc.details:
            response["Retry-After"] = str(exc.details["retry_after"])
        return response
    if isinstance(exc, Http404):
        return Response(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
    if isinstance(exc, RedisError):
        # Redis restarting or unreachable past its client's retries (a connection reset while one is
        # being opened is not retried by redis-py): a moment's outage of a platform service, answered as
        # one — what was committed stays committed, and a retry with the same client order id is safe
        logger.warning("Redis unreachable while answering a request", exc_info=exc)
        response = Response(
            error_body(
                ErrorCode.SERVICE_UNAVAILABLE,
                "A platform service is briefly unreachable. Retry in a moment; an order retried with "
                "the same client_order_id is never placed twice.",
            ),
            status=503,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    from rest_framework.views import exception_handler as drf_default_handler  # cycle: views imports settings

    response = drf_default_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(
            ErrorCode.VALIDATION_ERROR, "The request is invalid.", {"fields": _flatten_validation(exc.detail)}
        )
    elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        code = getattr(exc, "xbit_code", ErrorCode.NOT_AUTHENTICATED)
        response.data = error_body(code, str(exc.detail))
        response.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, drf_exceptions.PermissionDenied):
        response.data = error_body(getattr(exc, "xbit_code", ErrorCode.PERMISSION_DENIED), str(exc.detail))
    elif isinstance(exc, drf_exceptions.Throttled):
        response.data = error_body(ErrorCode.RATE_LIMITED, str(exc.detail), {"retry_after": exc.wait})
    elif isinstance(exc, drf_exceptions.NotFound):
        response.data = error_body(ErrorCode.NOT_FOUND, str(exc.detail))
    elif isinstance(
        exc,
        (
            drf_exceptions.MethodNotAllowed | drf_exceptions.NotAcceptable,
            drf_exceptions.ParseError | drf_exceptions.UnsupportedMediaType,
        ),
    ):
        response.data = error_body(ErrorCode.VALIDATION_ERROR, str(exc.detail))
    else:
        response.data = error_body(ErrorCode.INTERNAL_ERROR, str(getattr(exc, "detail", "error")))
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: a URL the API does not route (``/api/v1/orders/abc``: the ``<int:>`` converter
    does not match) answers the API's error body, not Django's HTML page; other paths keep the page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
    return defaults.page_not_found(request, exception)
