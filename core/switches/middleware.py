"""``api_mode`` (spec 10) at the door of the trader API (``/api/v1/``; the ops API under
``/api/v1/ops/`` and the console are never affected):

* MAINTENANCE — every request answers 503 ``MAINTENANCE`` with the operator's message;
* REDUCE_ONLY — whatever can add risk is refused with ``REDUCE_ONLY``: an opening order (``POST
  /api/v1/orders`` without ``reduce_only: true``), a leverage change (``POST /api/v1/leverage``) and
  taking margin out of an isolated position (``POST /api/v1/positions/<id>/margin`` with a negative
  amount). Closes, cancels, queries, withdrawals and adding margin (it moves a position away from
  liquidation) pass.

The mode is read from the process cache (no query per request)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import ErrorCode, error_body
from core.switches import store

API_PREFIX = "/api/v1/"
OPS_PREFIX = "/api/v1/ops/"
ORDERS_PATH = "/api/v1/orders"
LEVERAGE_PATH = "/api/v1/leverage"
MARGIN_PATH = re.compile(r"^/api/v1/positions/[^/]+/margin$")
_UNREADABLE = object()


def _body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _UNREADABLE


def _opens_risk(request: HttpRequest) -> str:
    """What the request would do that REDUCE_ONLY forbids ("" when it is allowed). A body that cannot
    be read is not provably risk-reducing and is refused."""
    if request.method != "POST":
        return ""
    path = request.path_info.rstrip("/")
    if path == LEVERAGE_PATH:
        return "changing leverage"
    if path == ORDERS_PATH:
        body = _body(request)
        if not isinstance(body, dict):
            return "an opening order"
        flag = body.get("reduce_only", False)
        reduce_only = flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")
        return "" if reduce_only else "an opening order"
    if MARGIN_PATH.match(path):
        body = _body(request)
        try:
            amount = Decimal(str(body["amount"]).strip()) if isinstance(body, dict) else None
        except (KeyError, InvalidOperation, ValueError):
            amount = None
        if amount is not None and amount.is_finite() and amount > 0:
            return ""
        return "taking margin out of a position"
    return ""


class ApiModeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and not path.startswith(OPS_PREFIX):
            mode = store.api_mode()
            if mode == store.API_MAINTENANCE:
                response = JsonResponse(
                    error_body(ErrorCode.MAINTENANCE, str(store.core_value("api_maintenance_message"))),
                    status=503,
                )
                response["Retry-After"] = "60"
                return response
            refused = _opens_risk(request) if mode == store.API_REDUCE_ONLY else ""
            if refused:
                return JsonResponse(
                    error_body(
                        ErrorCode.REDUCE_ONLY,
                        f"The platform is in reduce-only mode: {refused} is not accepted. Orders with "
                        "reduce_only=true, position closes, cancels, adding margin, queries and "
                        "withdrawals are.",
                        {"api_mode": mode},
                    ),
                    status=403,
                )
        return self.get_response(request)
