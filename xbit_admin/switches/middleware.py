"""``api_mode`` (spec 10) at the door of the trader API (``/api/v1/``; the ops API under
``/api/v1/ops/`` and the console are never affected):

* MAINTENANCE — every request answers 503 ``MAINTENANCE`` with the operator's message;
* REDUCE_ONLY — an opening order (``POST /api/v1/orders`` without ``reduce_only: true``) is refused
  with ``REDUCE_ONLY``; closes, cancels, queries and withdrawals pass.

The mode is read from the process cache (no query per request)."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from xbit_admin.errors import ErrorCode, error_body
from xbit_admin.switches import store

API_PREFIX = "/api/v1/"
OPS_PREFIX = "/api/v1/ops/"
ORDERS_PATH = "/api/v1/orders"


def _opens_risk(request: HttpRequest) -> bool:
    if request.method != "POST" or request.path_info.rstrip("/") != ORDERS_PATH:
        return False
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return True  # unreadable: not provably reduce-only
    if not isinstance(body, dict):
        return True
    flag = body.get("reduce_only", False)
    return not (flag is True or (isinstance(flag, str) and flag.strip().lower() == "true"))


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
            if mode == store.API_REDUCE_ONLY and _opens_risk(request):
                return JsonResponse(
                    error_body(
                        ErrorCode.REDUCE_ONLY,
                        "The platform is in reduce-only mode: only orders with reduce_only=true, "
                        "position closes, cancels, queries and withdrawals are accepted.",
                        {"api_mode": mode},
                    ),
                    status=403,
                )
        return self.get_response(request)
