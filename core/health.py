"""Liveness, readiness and metrics endpoints (spec 08).

* ``/healthz``: the process answers (liveness — restart me if not).
* ``/readyz``: can this process serve traffic? **Gating** checks (database, Redis, and whatever the
  apps append to :data:`READINESS_CHECKS`) turn it 503 when they fail. **Advisory** checks (HL
  connectivity, circuit breakers: :data:`ADVISORY_CHECKS` and ``settings.HEALTH_ADVISORY_CHECKS``) are
  reported with their detail and make the status ``degraded`` but never 503: when HL is down or a
  breaker trips the platform keeps serving — the console, closing, withdrawals — by design (spec 08
  disaster recovery), so taking every web pod out of the load balancer would turn a degraded venue
  into a full outage.
* ``/metrics``: Prometheus text for this process group (multiprocess aggregate, see
  ``core.metrics``) plus the platform collectors named in ``settings.METRICS_COLLECTORS``
  (business figures read at scrape time). Behind ``METRICS_BEARER_TOKEN``; closed when none is set.

The core never imports a domain app: the roof-level checks and collectors that read the rooms are
named by dotted path in settings and resolved on first use.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import metrics

Check = Callable[[], dict[str, Any]]

# Apps append (name, callable) pairs; a failing one makes the process not ready (503).
READINESS_CHECKS: list[tuple[str, Check]] = []
# Reported with detail, never 503 (see the module docstring). Apps may append here too.
ADVISORY_CHECKS: list[tuple[str, Check]] = []


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


_redis_clients: dict[str, redis.Redis] = {}


def _check_redis() -> dict[str, Any]:
    started = time.perf_counter()
    url = settings.REDIS_URL
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients.setdefault(
            url, redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        )
    client.ping()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


_resolved_lock = threading.Lock()
_resolved_advisory: dict[tuple[str, str], Check] = {}


def _settings_advisory_checks() -> list[tuple[str, Check]]:
    configured: dict[str, str] = getattr(settings, "HEALTH_ADVISORY_CHECKS", {}) or {}
    out = []
    with _resolved_lock:
        for name, path in configured.items():
            key = (name, path)
            if key not in _resolved_advisory:
                _resolved_advisory[key] = import_string(path)
            out.append((name, _resolved_advisory[key]))
    return out


def _run(check: Check) -> dict[str, Any]:
    try:
        result = check()
    except Exception as exc:  # a readiness probe reports failures, it does not raise them
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return result


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    for name, check in [("database", _check_database), ("redis", _check_redis), *READINESS_CHECKS]:
        checks[name] = _run(check)
    ready = all(result.get("ok") for result in checks.values())
    degraded = False
    for name, check in [*ADVISORY_CHECKS, *_settings_advisory_checks()]:
        if name in checks:  # an app registered a gating check of that name: it wins
            continue
        result = {**_run(check), "gating": False}
        checks[name] = result
        degraded = degraded or not result.get("ok")
    status = "not_ready" if not ready else ("degraded" if degraded else "ready")
    return JsonResponse({"status": status, "checks": checks}, status=200 if ready else 503)


# --- /metrics --------------------------------------------------------------------------------------

_collectors_lock = threading.Lock()
_collectors: dict[str, Any] = {}


def platform_collectors() -> list[Any]:
    """The collectors of ``settings.METRICS_COLLECTORS``, built once per process (they keep a short
    cache between scrapes). A dotted path may name a class (instantiated without arguments) or an
    instance."""
    out = []
    with _collectors_lock:
        for path in getattr(settings, "METRICS_COLLECTORS", []) or []:
            if path not in _collectors:
                target = import_string(path)
                _collectors[path] = target() if isinstance(target, type) else target
            out.append(_collectors[path])
    return out


def _metrics_authorised(request: HttpRequest) -> bool:
    """The bearer token, everywhere (/metrics shows treasury balances and exposure); without
    a configured token nobody reads them. Local development: ``METRICS_BEARER_TOKEN=… make run``."""
    token = getattr(settings, "METRICS_BEARER_TOKEN", "") or ""
    if not token:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _metrics_authorised(request):
        response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = metrics.scrape_registry(extra=platform_collectors())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class ProbeMiddleware:
    """Answers ``/healthz``, ``/readyz`` and ``/metrics`` before any other middleware (production).

    Kubelet probes and Prometheus reach a pod by its IP, so their ``Host`` is never one of
    ``ALLOWED_HOSTS`` and their scheme is plain HTTP: going through ``SecurityMiddleware`` and
    ``CommonMiddleware`` they would get a redirect or a 400. These three views build no URL from the
    host, so skipping host validation for them is safe; ``/metrics`` keeps its bearer token."""

    _VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
        "/healthz": healthz,
        "/readyz": readyz,
        "/metrics": metrics_view,
    }

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self._VIEWS.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
