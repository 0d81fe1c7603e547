"""Prometheus metrics shared across the house, and how every process exposes them.

Each app declares its own instruments next to its code (``xbit_hl_request_seconds`` in
``trading/venues/hl.py``, ``xbit_feed_*`` in ``trading/feed/metrics.py``); the ones here are the frame's, plus
the hot-path instruments of spec 08 that several rooms feed (routing decisions, internal execution,
liquidations): the room that owns the code path observes them, nothing here calls into a room.

**Several processes, one view (multiprocess mode).** The web process runs several uvicorn workers
behind one port and Celery forks pool children, so a scrape reaches one process out of many. Every
deployed process therefore runs with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty, process-group-private
directory: an ``emptyDir`` per pod, a tmpfs per container): ``prometheus_client`` then keeps each
process's values in memory-mapped files there, and a scrape aggregates all of them
(:func:`scrape_registry`). The variable must be in the environment before ``prometheus_client`` is
imported — set it in the container, never in settings — and the directory must be emptied before the
process group starts (``deploy/docker-entrypoint.sh`` does). Counters and histograms of a worker that
exited keep counting towards the totals, as they should; its live gauges are dropped by
:func:`mark_process_dead` at exit (``atexit``, and Celery's ``worker_process_shutdown`` for pool
children).

Per-process exporters were the alternative; they cannot work behind uvicorn's shared socket nor for
Celery's pool children, so they are used only at the level of a whole process group: the web process
serves ``/metrics``; every other process (worker, beat, feed, relay, hlstream, risk) serves the same
aggregated view on ``XBIT_METRICS_PORT`` (``start_exporter``) when that variable is set.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from celery.signals import worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead

logger = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus_client fails on a missing directory; the entrypoint creates (and empties) it, this
    # keeps a process started another way (kubectl exec, a one-off command) from crashing.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

HTTP_LATENCY = Histogram(
    "xbit_http_request_seconds",
    "HTTP request latency by method and route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HTTP_RESPONSES = Counter(
    "xbit_http_responses_total", "HTTP responses by method, route and status", ["method", "route", "status"]
)
OUTBOX_PUBLISHED = Counter("xbit_outbox_published_total", "Outbox events published to the stream")
EVENTS_HANDLED = Counter(
    "xbit_events_handled_total", "Domain events handled by consumer", ["consumer", "outcome"]
)
ALERTS_RAISED = Counter(
    "xbit_alerts_raised_total", "Alerts raised by rule and severity", ["rule", "severity"]
)

# --- hot-path instruments of spec 08, observed by the room that owns the code path -----------------
# Until a room observes them, ``xbit_admin.collectors`` derives the same facts from the database over a
# short window (``xbit_routing_decisions_last_minute`` …) so the dashboard is never blank.
ROUTING_DECISIONS = Counter(
    "xbit_routing_decisions_total", "Routing decisions by route and reason", ["route", "reason"]
)
ROUTING_DECISION_SECONDS = Histogram(
    "xbit_routing_decision_seconds",
    "Time to take one routing decision (in memory)",
    buckets=(0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005),
)
INTERNAL_EXECUTION_SECONDS = Histogram(
    "xbit_internal_execution_seconds",
    "INTERNAL order: accepted to fill committed",
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
)
LIQUIDATION_DETECTION_SECONDS = Histogram(
    "xbit_liquidation_detection_seconds",
    "Mark update received to liquidation trigger written, by venue",
    ["venue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LIQUIDATION_EXECUTION_SECONDS = Histogram(
    "xbit_liquidation_execution_seconds",
    "Liquidation trigger written to positions closed, by venue",
    ["venue"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LIQUIDATIONS = Counter(
    "xbit_liquidations_total", "Liquidations executed, by venue and outcome", ["venue", "outcome"]
)


# --- multiprocess mode -------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The shared directory when this process runs in multiprocess mode, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Forward:
    """Presents an existing registry's metrics inside another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()

    def describe(self) -> list[Metric]:
        return []


def scrape_registry(extra: Iterable[Any] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process of the group (multiprocess mode) or this process's
    default registry, plus ``extra`` collectors (the web process adds the platform collector)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))  # type: ignore[arg-type]
    for collector in extra:
        registry.register(collector)
    return registry


def mark_process_dead(pid: int | None = None) -> None:
    """Drop an exited process's live gauges from the shared directory (no-op outside multiprocess)."""
    if multiprocess_dir():
        try:
            _mark_process_dead(pid if pid is not None else os.getpid())
        except OSError:  # the directory went first (container teardown)
            pass


_process_lock = threading.Lock()
_process_configured = False
_exporter_port: int | None = None


def start_exporter(port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104 - pod-internal port
    """Serve this process group's metrics on ``port`` from a daemon thread. Returns False (and logs)
    when the port is taken — a metrics port must never stop the process it observes."""
    global _exporter_port
    if _exporter_port is not None:
        return _exporter_port == port
    try:
        start_http_server(port, addr=addr, registry=scrape_registry())
    except OSError as exc:
        logger.warning("metrics exporter not started on port %s: %s", port, exc)
        return False
    _exporter_port = port
    return True


def _celery_child_exit(pid: int | None = None, **_: Any) -> None:
    mark_process_dead(pid)


def configure_process() -> None:
    """Per-process metrics set-up, run once at Django start-up (``observability.configure_structlog``):
    live gauges are dropped at exit, Celery pool children included, and the exporter starts when
    ``XBIT_METRICS_PORT`` is set (workers, beat, feed, relay, hlstream, risk — never the web process,
    which serves ``/metrics`` itself)."""
    global _process_configured
    with _process_lock:
        if _process_configured:
            return
        _process_configured = True
    if multiprocess_dir():
        atexit.register(mark_process_dead)  # the pid at exit: forked children inherit this hook
        worker_process_shutdown.connect(_celery_child_exit, weak=False)
    port = os.environ.get("XBIT_METRICS_PORT", "").strip()
    if port:
        try:
            start_exporter(int(port))
        except ValueError:
            logger.warning("XBIT_METRICS_PORT is not a port number: %r", port)
