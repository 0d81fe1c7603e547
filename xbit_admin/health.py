"""Liveness, readiness and metrics endpoints (spec 08)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# Later issues add checks (HL connectivity, breakers) by appending (name, callable) pairs.
READINESS_CHECKS: list[tuple[str, Callable[[], dict[str, Any]]]] = []


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_redis() -> dict[str, Any]:
    started = time.perf_counter()
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    client.ping()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    for name, check in [("database", _check_database), ("redis", _check_redis), *READINESS_CHECKS]:
        try:
            checks[name] = check()
        except Exception as exc:  # a readiness probe reports failures, it does not raise them
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ready = all(result.get("ok") for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
    )


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
