"""Structured logs with request context, and HTTP metrics.

Every log line emitted while a request is handled carries its ``request_id`` (and ``user_id`` once
known; later layers bind ``order_id``) through structlog's contextvars, so one grep follows a request
across every module.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from xbit_admin import metrics

_SECRET_KEYS = re.compile(r"(secret|password|token|signature|otp|totp|private|api[_-]?key|seed)", re.I)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _mask_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Keys, TOTP secrets, passwords and signatures are never logged, whoever passes them."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = "***"
    return event_dict


_shared_processors: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _mask_secrets,
]


class StructlogFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders stdlib and structlog records alike: JSON in deployments, readable lines locally."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        renderer: Any
        if getattr(settings, "LOG_JSON", True):
            renderer = structlog.processors.JSONRenderer()
        else:
            renderer = structlog.dev.ConsoleRenderer(colors=False)
        super().__init__(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=_shared_processors,
        )


def configure_structlog() -> None:
    structlog.configure(
        processors=[*_shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class RequestContextMiddleware:
    """Binds a request id (the caller's ``X-Request-ID`` if well-formed) to every log line and echoes
    it in the response; records latency per route for ``/metrics``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        metrics.HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        metrics.HTTP_RESPONSES.labels(request.method, route, str(response.status_code)).inc()
        response["X-Request-ID"] = request_id
        structlog.contextvars.clear_contextvars()
        return response


def bind_user(user_id: int | None) -> None:
    if user_id is not None:
        structlog.contextvars.bind_contextvars(user_id=user_id)


logger = logging.getLogger("xbit")
