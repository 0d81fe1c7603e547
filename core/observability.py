"""Structured logs with request context, and HTTP metrics.

Every log line emitted while a request is handled carries its ``request_id``, the ``user_id`` once the
request is authenticated, and the ``order_id`` once a layer binds it (:func:`bind_order`), through
structlog's contextvars — so one grep follows a request across every module. Celery tasks get the
same treatment with ``task_id`` / ``task``.

How the user id gets there without touching any view: DRF authenticates lazily inside the view and
then sets ``user`` on the underlying Django request (session auth sets a lazy ``user`` in
middleware). The middleware keeps the current request in a context variable, and the
:func:`_add_user_id` processor reads ``request.user`` *only if it has already been resolved* — it never
triggers authentication or a query itself. Lines logged before authentication have no user id (there
is none yet); every line after it has one, and so does the request's own closing ``http.request`` line.

Secrets are never logged: :func:`_mask_secrets` masks any field whose name looks like a credential (at
any depth of nested dicts) and ``name=value`` pairs of such names inside the message text.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

from core import metrics

_MASKED_NAMES = (
    r"secret|password|passwd|passphrase|token|signature|otp|totp|private|api[_-]?key|seed|mnemonic"
    r"|authorization|cookie|credential|(?:agent|signing|encryption|wallet)[_-]?key"
)
_SECRET_KEYS = re.compile(rf"({_MASKED_NAMES})", re.I)
# ``password=hunter2`` / ``"token": "abc"`` inside a free-text message
_SECRET_IN_TEXT = re.compile(
    rf"""(?P<name>[\w-]*(?:{_MASKED_NAMES})[\w-]*)(?P<sep>["']?\s*[:=]\s*["']?)(?P<value>[^\s"',;&}}]+)""",
    re.I,
)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MASK = "***"
_MAX_DEPTH = 6

_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "xbit_current_request", default=None
)


def _mask_value(value: Any, depth: int = 0) -> Any:
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: (_MASK if isinstance(k, str) and _SECRET_KEYS.search(k) else _mask_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_value(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask_value(v, depth + 1) for v in value)
    return value


def mask_text(text: str) -> str:
    """``"login password=hunter2"`` → ``"login password=***"``."""
    return _SECRET_IN_TEXT.sub(lambda m: f"{m.group('name')}{m.group('sep')}{_MASK}", text)


def _mask_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Keys, TOTP secrets, passwords and signatures are never logged, whoever passes them."""
    for key in list(event_dict):
        value = event_dict[key]
        if key == "event":
            if isinstance(value, str):
                event_dict[key] = mask_text(value)
        elif _SECRET_KEYS.search(key):
            event_dict[key] = _MASK
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _mask_value(value)
    return event_dict


def _resolved_user(request: HttpRequest) -> Any:
    """``request.user`` if authentication has already run for this request, without running it."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = user._wrapped
        if user is empty:
            return None
    return user


def _add_user_id(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if "user_id" not in event_dict:
        request = _current_request.get()
        if request is not None:
            user = _resolved_user(request)
            if user is not None and getattr(user, "is_authenticated", False):
                event_dict["user_id"] = user.pk
    return event_dict


_shared_processors: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _add_user_id,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _mask_secrets,
]


def _mask_exception(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = mask_text(exception)
    return event_dict


class StructlogFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders stdlib and structlog records alike: JSON in deployments, readable lines locally."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        renderers: list[Any]
        if getattr(settings, "LOG_JSON", True):
            # tracebacks as one JSON field, with any credential in them masked like the rest
            renderers = [
                structlog.processors.format_exc_info,
                _mask_exception,
                structlog.processors.JSONRenderer(),
            ]
        else:
            # plain tracebacks: rich ones print every local (secrets included) and take seconds under load
            renderers = [
                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
            ]
        super().__init__(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
            foreign_pre_chain=_shared_processors,
        )


def configure_structlog() -> None:
    """Per-process observability set-up, run once at start-up by the console app's ``ready()`` in
    every process (web, workers, beat, feed, …): structlog, Celery task context, and the metrics
    process hooks (multiprocess clean-up, the exporter — see ``core.metrics``)."""
    structlog.configure(
        processors=[*_shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _connect_celery_context()
    metrics.configure_process()


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


def _task_finished(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


_celery_connected = False


def _connect_celery_context() -> None:
    global _celery_connected
    if _celery_connected:
        return

    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_finished, weak=False)
    _celery_connected = True


request_logger = structlog.get_logger("xbit.http")


class RequestContextMiddleware:
    """Binds a request id (the caller's ``X-Request-ID`` if well-formed) to every log line and echoes
    it in the response; keeps the request for the user-id processor; records latency per route for
    ``/metrics``; ends with one ``http.request`` line (``LOG_REQUESTS``) carrying the user id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_context(request):
            started = time.perf_counter()
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            route = match.route if match is not None and match.route else "unmatched"
            request_done(request, response, route, time.perf_counter() - started)
            return response


@contextmanager
def request_context(request: HttpRequest) -> Iterator[None]:
    """The request's id and log context for as long as it runs (``RequestContextMiddleware``; the
    order lane, ``xbit_admin.order_lane``, which answers its requests without the middleware chain)."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
    request.request_id = request_id  # type: ignore[attr-defined]
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    token = _current_request.set(request)
    try:
        yield
    finally:
        _current_request.reset(token)
        structlog.contextvars.clear_contextvars()


def request_done(request: HttpRequest, response: HttpResponseBase, route: str, elapsed: float) -> None:
    """A finished request: its latency and status for ``/metrics``, its id echoed, its log line."""
    metrics.HTTP_LATENCY.labels(request.method, route).observe(elapsed)
    metrics.HTTP_RESPONSES.labels(request.method, route, str(response.status_code)).inc()
    response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
    if getattr(settings, "LOG_REQUESTS", False) and route not in _QUIET_ROUTES:
        fields: dict[str, Any] = {}
        if response.status_code >= 400:
            # the stable error code of a refusal or failure, so that a 5xx in the log says what it was
            data = getattr(response, "data", None)
            if isinstance(data, dict) and "code" in data:
                fields["code"] = str(data["code"])
        request_logger.info(
            "http.request",
            method=request.method,
            route=route,
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 2),
            **fields,
        )


# Probes and scrapes every few seconds would drown the request log.
_QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics"})


def bind_user(user_id: int | None) -> None:
    if user_id is not None:
        structlog.contextvars.bind_contextvars(user_id=user_id)


def bind_order(order_id: int | str | None) -> None:
    """Every later log line of this request / task carries ``order_id`` (trading calls this once the
    order row exists). Cleared with the rest of the context when the request or task ends."""
    if order_id is not None:
        structlog.contextvars.bind_contextvars(order_id=order_id)


logger = logging.getLogger("xbit")
