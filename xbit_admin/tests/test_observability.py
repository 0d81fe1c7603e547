"""Observability (spec 08): platform metrics read at scrape time, multiprocess metrics, structured logs
with request/user/order context and masked secrets, readiness with advisory checks."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core import health, metrics, observability
from xbit_admin import collectors

REPO = Path(__file__).resolve().parents[2]
ASSET = "OBSX"  # an asset no other test (or concurrent run) quotes


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _scrape(collector: collectors.PlatformCollector | None = None) -> dict[Any, float]:
    from prometheus_client import generate_latest

    registry = metrics.scrape_registry(extra=[collector or collectors.PlatformCollector(ttl=0)])
    return _samples(generate_latest(registry).decode())


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


# ---------------------------------------------------------------------------------- platform metrics


@pytest.fixture
def quoted_asset() -> Iterator[str]:
    from trading.marketdata import quote_delete, quote_update

    quote_update(ASSET, mark="110", notify=False)
    yield ASSET
    quote_delete([ASSET])


@pytest.mark.django_db
def test_exposure_and_bbook_pnl_follow_internal_positions_at_mark(
    make_trader: Any, quoted_asset: str
) -> None:
    from trading.models import Position

    def open_position(direction: str, size: str, entry: str, source: str = "INTERNAL") -> None:
        Position.objects.create(
            user=make_trader(),
            asset=quoted_asset,
            source=source,
            margin_mode="cross",
            direction=direction,
            size=Decimal(size),
            entry_price=Decimal(entry),
            leverage=5,
        )

    open_position("LONG", "3", "100")  # users long 3 @ 100
    open_position("SHORT", "1", "120")  # users short 1 @ 120
    open_position("LONG", "50", "100", source="HYPERLIQUID")  # no directional risk for the platform

    samples = _scrape()
    assert _value(samples, "xbit_exposure_long_usd", asset=quoted_asset) == 330.0  # 3 × 110
    assert _value(samples, "xbit_exposure_short_usd", asset=quoted_asset) == 110.0
    assert _value(samples, "xbit_exposure_net_usd", asset=quoted_asset) == 220.0
    # users: long +30, short +10 → the platform, their counterparty, is down 40
    assert _value(samples, "xbit_bbook_unrealized_pnl_usd", asset=quoted_asset) == -40.0
    assert _value(samples, "xbit_exposure_mark_missing", asset=quoted_asset) == 0.0
    assert _value(samples, "xbit_open_positions", source="HYPERLIQUID") >= 1


@pytest.mark.django_db
def test_every_collector_section_reads_cleanly() -> None:
    samples = _scrape()
    sections = {
        dict(labels)["section"]: v for (name, labels), v in samples.items() if name == "xbit_collector_up"
    }
    assert set(sections) == set(collectors.DB_SECTIONS) | set(collectors.OTHER_SECTIONS)
    assert all(v == 1.0 for v in sections.values()), sections
    assert _value(samples, "xbit_db_max_connections") > 0
    assert any(name == "xbit_db_connections" for name, _ in samples)
    assert ("xbit_redis_keyspace_hits_total", ()) in samples
    assert _value(samples, "xbit_withdrawal_sla_seconds", tier="auto") == 300


@pytest.mark.django_db
def test_reserve_bbook_and_hl_account_health_come_from_the_ledger_and_snapshots() -> None:
    from trading.models import HLAccountSnapshot
    from wallets.ledger import AccountRef, TransferSpec, ledger_post

    before = _scrape()
    ledger_post(
        key="obs-test-reserve",
        transfers=[
            TransferSpec(
                debit=AccountRef.platform("equity"),
                credit=AccountRef.platform("risk_reserve"),
                amount=Decimal("500000"),
                kind="capital",
            )
        ],
    )
    HLAccountSnapshot.objects.create(
        account="hedge",
        account_value=Decimal("300000"),
        total_margin_used=Decimal("100000"),
        maintenance_margin_used=Decimal("150000"),
        withdrawable=Decimal("200000"),
        total_notional=Decimal("500000"),
        margin_ratio=Decimal("2.0"),
        positions=[{"type": "oneWay", "position": {"coin": "ETH", "szi": "-10.5", "positionValue": "31500"}}],
    )
    after = _scrape()
    assert _value(after, "xbit_reserve_balance_usd") - _value(before, "xbit_reserve_balance_usd") == 500000
    assert _value(after, "xbit_hl_account_margin_ratio", account="hedge") == 2.0
    assert _value(after, "xbit_hedge_position_size", asset="ETH") == -10.5
    assert _value(after, "xbit_hedge_notional_usd", asset="ETH") == -31500.0
    assert _value(after, "xbit_hl_account_snapshot_age_seconds", account="hedge") < 60


@pytest.mark.django_db
def test_withdrawal_queue_and_time_to_broadcast_per_tier(make_trader: Any) -> None:
    from wallets.models import Withdrawal

    now = timezone.now()
    trader = make_trader()

    def withdrawal(status: str, tier: str, **times: Any) -> None:
        Withdrawal.objects.create(
            user=trader,
            chain="TRON",
            asset="USDT",
            address=f"T{Withdrawal.objects.count():033d}",
            amount=Decimal("100"),
            fee=Decimal("1"),
            status=status,
            tier=tier,
            **times,
        )

    withdrawal("APPROVED", "single", confirmed_at=now - timedelta(minutes=12))
    withdrawal(
        "COMPLETED",
        "auto",
        confirmed_at=now - timedelta(seconds=70),
        broadcast_at=now - timedelta(seconds=62),
    )
    withdrawal(
        "BROADCAST",
        "auto",
        confirmed_at=now - timedelta(seconds=30),
        broadcast_at=now - timedelta(seconds=26),
    )

    samples = _scrape()
    assert _value(samples, "xbit_withdrawals_in_flight", tier="single", status="APPROVED") == 1
    assert 12 * 60 <= _value(samples, "xbit_withdrawal_queue_oldest_seconds", tier="single") < 13 * 60
    assert _value(samples, "xbit_withdrawals_broadcast_last_hour", tier="auto") == 2
    assert _value(
        samples, "xbit_withdrawal_broadcast_seconds_last_hour", tier="auto", quantile="1"
    ) == pytest.approx(8)


@pytest.mark.django_db
def test_celery_queue_depth_counts_every_priority_list_of_a_queue() -> None:
    broker = settings.REDIS_URL  # this run's own database (devstack claims one per run); no worker reads it
    client = redis.Redis.from_url(broker)
    client.delete("critical", "critical\x06\x163", "wallets", "unacked")
    try:
        client.lpush("critical", "a", "b")
        client.lpush("critical\x06\x163", "c")
        client.lpush("wallets", "d")
        with override_settings(CELERY_BROKER_URL=broker):
            samples = _scrape()
        assert _value(samples, "xbit_celery_queue_length", queue="critical") == 3
        assert _value(samples, "xbit_celery_queue_length", queue="wallets") == 1
        assert _value(samples, "xbit_celery_queue_length", queue="hedge") == 0
    finally:
        client.delete("critical", "critical\x06\x163", "wallets")


@pytest.mark.django_db
def test_websocket_clients_are_counted_across_processes_through_the_channel_layer() -> None:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    before = _value(_scrape(), "xbit_websocket_clients")
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(f"{prefix}specific.obs-test-1", f"{prefix}specific.obs-test-2")
    try:
        pubsub.get_message(timeout=1)
        assert _value(_scrape(), "xbit_websocket_clients") >= before + 2
    finally:
        pubsub.close()


@pytest.mark.django_db
def test_scrapes_within_the_cache_window_cost_no_query() -> None:
    collector = collectors.PlatformCollector(ttl=60)
    _scrape(collector)
    with CaptureQueriesContext(connection) as queries:
        _scrape(collector)
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_failing_section_is_reported_and_does_not_hide_the_others(monkeypatch: Any) -> None:
    def broken() -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        return []

    monkeypatch.setitem(collectors.DB_SECTIONS, "broken", broken)
    samples = _scrape()
    assert _value(samples, "xbit_collector_up", section="broken") == 0
    assert _value(samples, "xbit_collector_up", section="ledger") == 1  # the savepoint kept the transaction


@pytest.mark.django_db
def test_metrics_endpoint_serves_platform_metrics_and_honours_the_bearer_token() -> None:
    Client().get("/healthz")
    with override_settings(METRICS_BEARER_TOKEN="s3cret-scrape"):
        body = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").content.decode()
    assert "xbit_collector_up" in body and "xbit_http_request_seconds_bucket" in body
    assert Client().get("/metrics").status_code == 401  # no token configured: closed (issue #17)
    with override_settings(METRICS_BEARER_TOKEN="s3cret-scrape"):
        assert Client().get("/metrics").status_code == 401
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").status_code == 200


# --------------------------------------------------------------------------------- multiprocess mode


def _run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_multiprocess_mode_aggregates_every_process_of_the_group(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    bump = """
        from core import metrics
        metrics.HTTP_RESPONSES.labels("GET", "api/v1/orders", "200").inc(%d)
        metrics.ROUTING_DECISION_SECONDS.observe(0.00002)
        metrics.mark_process_dead()
    """
    _run(bump % 2, env)  # e.g. two uvicorn workers or two Celery pool children that have exited
    _run(bump % 3, env)
    text = _run(
        """
        from prometheus_client import generate_latest
        from core import metrics
        print(generate_latest(metrics.scrape_registry()).decode())
        """,
        env,
    )
    samples = _samples(text)
    key = ("xbit_http_responses_total", (("method", "GET"), ("route", "api/v1/orders"), ("status", "200")))
    assert samples[key] == 5
    assert samples[("xbit_routing_decision_seconds_count", ())] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_non_web_processes_export_on_their_metrics_port(tmp_path: Path) -> None:
    port = _free_port()
    text = _run(
        f"""
        import urllib.request
        from core import metrics
        metrics.OUTBOX_PUBLISHED.inc(7)
        assert metrics.start_exporter({port}, addr="127.0.0.1")
        assert metrics.start_exporter({port}, addr="127.0.0.1")  # idempotent
        print(urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
        """,
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert _samples(text)[("xbit_outbox_published_total", ())] == 7


def test_a_taken_metrics_port_never_stops_the_process() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _run(
            f"""
            from core import metrics
            print(metrics.start_exporter({port}, addr="127.0.0.1"))
            """,
            {},
        )
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------ structured logs


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Lines of the ``xbit.obs`` logger rendered exactly as production renders them (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    with override_settings(LOG_JSON=True):
        handler.setFormatter(observability.StructlogFormatter())
    log = logging.getLogger("xbit.obs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield stream
    log.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_credentials_are_masked_whoever_logs_them(json_log: io.StringIO) -> None:
    log = structlog.get_logger("xbit.obs")
    log.info(
        "api key created",
        password="hunter2-pass",
        access_token="eyJhbGciOi.secret",
        signature="a1b2c3d4e5",
        api_key="XBIT-KEY-123",
        totp_secret="JBSWY3DPEHPK3PXP",
        agent_key="0xdeadbeef",
        payload={"user": 7, "headers": {"Authorization": "Bearer abc.def"}, "items": [{"secret": "s"}]},
        amount="10.5",
    )
    logging.getLogger("xbit.obs").warning("login failed for a@b.c password=hunter2-pass token: abc123")
    first, second = _lines(json_log)
    for field in ("password", "access_token", "signature", "api_key", "totp_secret", "agent_key"):
        assert first[field] == "***", field
    assert first["payload"] == {"user": 7, "headers": {"Authorization": "***"}, "items": [{"secret": "***"}]}
    assert first["amount"] == "10.5"  # ordinary fields are left alone
    assert "hunter2-pass" not in second["event"] and "abc123" not in second["event"]
    assert second["event"].startswith("login failed for a@b.c password=***")
    raw = json_log.getvalue()
    for secret in (
        "hunter2-pass",
        "eyJhbGciOi",
        "a1b2c3d4e5",
        "XBIT-KEY-123",
        "JBSWY3DP",
        "0xdeadbeef",
        "abc.def",
    ):
        assert secret not in raw


def test_tracebacks_are_masked_too(json_log: io.StringIO) -> None:
    try:
        raise ValueError("bad signature=ffee00 for request")
    except ValueError:
        logging.getLogger("xbit.obs").exception("boom")
    (line,) = _lines(json_log)
    assert "ffee00" not in line["exception"] and "signature=***" in line["exception"]


def test_every_line_of_a_request_carries_request_user_and_order_ids(
    json_log: io.StringIO, make_trader: Any
) -> None:
    trader = make_trader()
    log = structlog.get_logger("xbit.obs")

    def view(request: HttpRequest) -> HttpResponse:
        log.info("before authentication")
        request.user = trader  # what DRF's lazy authentication does to the Django request
        log.info("authenticated")
        observability.bind_order(4242)
        log.info("order placed")
        return HttpResponse("ok")

    middleware = observability.RequestContextMiddleware(view)
    request = RequestFactory().get("/api/v1/orders", HTTP_X_REQUEST_ID="req-77")
    with override_settings(LOG_REQUESTS=True):
        response = middleware(request)
    assert response["X-Request-ID"] == "req-77"
    log.info("after the request")
    before, authenticated, placed, after = _lines(json_log)
    assert before["request_id"] == "req-77" and "user_id" not in before
    assert authenticated["user_id"] == trader.pk and "order_id" not in authenticated
    assert placed["user_id"] == trader.pk and placed["order_id"] == 4242
    assert "request_id" not in after and "user_id" not in after and "order_id" not in after


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """The ``xbit.http`` request lines, as JSON, of the requests made while it is in use."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    with override_settings(LOG_JSON=True):
        handler.setFormatter(observability.StructlogFormatter())
    http_log = logging.getLogger("xbit.http")
    http_log.addHandler(handler)
    http_log.setLevel(logging.INFO)
    try:
        with override_settings(LOG_REQUESTS=True):
            yield stream
    finally:
        http_log.removeHandler(handler)


@pytest.mark.django_db
def test_the_request_line_of_a_jwt_call_names_the_user_drf_authenticated(
    make_trader: Any, request_log: io.StringIO
) -> None:
    from core.accounts.tokens import access_token_for

    trader = make_trader()
    response = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {access_token_for(trader)}")
    assert response.status_code == 200
    (line,) = _lines(request_log)
    assert line["event"] == "http.request" and line["route"] == "api/v1/me" and line["status"] == 200
    assert line["user_id"] == trader.pk and line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_the_request_line_of_a_refusal_carries_its_error_code(
    make_trader: Any, request_log: io.StringIO
) -> None:
    from core.accounts.tokens import access_token_for

    auth = {"HTTP_AUTHORIZATION": f"Bearer {access_token_for(make_trader())}"}
    missing = Client().get("/api/v1/orders/987654321", **auth)
    fine = Client().get("/api/v1/me", **auth)
    assert (missing.status_code, fine.status_code) == (404, 200)
    refused, answered = _lines(request_log)
    assert refused["status"] == 404 and refused["code"] == "NOT_FOUND"
    assert answered["status"] == 200 and "code" not in answered


def test_a_celery_task_binds_its_id_to_every_line(json_log: io.StringIO) -> None:
    class Task:
        name = "risk.liquidate"

    observability._task_started(task_id="t-1", task=Task())
    structlog.get_logger("xbit.obs").info("liquidating")
    observability._task_finished()
    structlog.get_logger("xbit.obs").info("idle")
    during, after = _lines(json_log)
    assert during["task_id"] == "t-1" and during["task"] == "risk.liquidate"
    assert "task_id" not in after


# ---------------------------------------------------------------------------------------- readiness


@pytest.fixture
def fresh_hl_check() -> Iterator[None]:
    collectors._hl_cache.clear()
    yield
    collectors._hl_cache.clear()


@pytest.mark.django_db
def test_readyz_reports_hl_and_breakers_as_advisory(fresh_hl_check: None) -> None:
    body = Client().get("/readyz").json()
    assert body["checks"]["hl"]["gating"] is False and body["checks"]["breakers"]["gating"] is False
    assert body["checks"]["breakers"]["ok"] is True


@pytest.mark.django_db
def test_hl_unreachable_degrades_readiness_without_taking_the_pod_out(
    monkeypatch: Any, fresh_hl_check: None
) -> None:
    from eth_account import Account

    from trading.venues import hl

    key = Account.create()
    gw = hl.HLGateway(
        hl.AccountCredentials("trading", Account.create().address, key.key.hex()),
        base_url=f"http://127.0.0.1:{_free_port()}",  # nothing listens there
    )
    monkeypatch.setattr(hl, "gateway", lambda name="trading": gw)
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["checks"]["hl"]["ok"] is False
    assert "ConnectionError" in body["checks"]["hl"]["error"]
    assert Client().get("/readyz").json()["checks"]["hl"].get("cached") is True  # probes never hammer HL
    assert _value(_scrape(), "xbit_hl_up") == 0


@pytest.mark.django_db
def test_a_tripped_breaker_is_reported_with_its_reason(fresh_hl_check: None) -> None:
    from django.apps import apps

    breaker = apps.get_model("risk", "CircuitBreaker")
    breaker.objects.update_or_create(
        kind="KILL_SWITCH", scope="*", defaults={"state": "TRIPPED", "reason": "operator halt"}
    )
    body = Client().get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["breakers"]["tripped"] == ["KILL_SWITCH:*"]
    assert body["checks"]["breakers"]["reasons"]["KILL_SWITCH:*"] == "operator halt"
    assert _value(_scrape(), "xbit_breaker_state", kind="KILL_SWITCH", scope="*") == 2


@pytest.mark.django_db
def test_an_app_gating_check_of_the_same_name_wins_over_the_advisory_one(monkeypatch: Any) -> None:
    monkeypatch.setattr(health, "READINESS_CHECKS", [("breakers", lambda: {"ok": False, "error": "tripped"})])
    response = Client().get("/readyz")
    assert response.status_code == 503 and "gating" not in response.json()["checks"]["breakers"]


@pytest.mark.django_db
def test_probes_answer_pods_reached_by_ip_while_other_paths_still_validate_the_host() -> None:
    production_like = {
        "MIDDLEWARE": ["core.health.ProbeMiddleware", *settings.MIDDLEWARE],
        "ALLOWED_HOSTS": ["xbit.example.com"],
        "SECURE_SSL_REDIRECT": True,
    }
    with override_settings(**production_like):
        client = Client()
        assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
        assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 401  # answered, no token
        assert client.get("/api/v1/me", HTTP_HOST="10.1.2.3:8000").status_code == 400
        assert client.get("/api/v1/me", HTTP_HOST="xbit.example.com").status_code == 301  # to https


@override_settings(LOG_JSON=False)
def test_local_log_lines_show_a_plain_traceback_without_the_frames_local_values() -> None:
    """The readable (non-JSON) format prints the traceback, never the values of local variables —
    a local may hold a key — and stays cheap under load."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.StructlogFormatter())
    log = logging.getLogger("xbit.test.tracebacks")
    log.addHandler(handler)
    try:
        agent_key = "0xb0b0" + "f" * 60  # noqa: F841 - the local a rich traceback would print
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "RuntimeError: boom" in text and "Traceback" in text
    assert "ffffffffff" not in text
