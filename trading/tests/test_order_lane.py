"""The order lane (``xbit_admin.order_lane``) answers exactly what the full Django path answers.

Each case is sent through the ASGI application twice, by two traders in the same state: once with the
lane on, once with it off (``ORDER_LANE``). Status, JSON body (ids and times aside) and the set of
response headers must be equal; the lane must have taken the requests it is meant to take and left the
others (malformed bodies, API modes, form bodies) to Django."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from core.accounts import hmac_auth
from core.accounts.api_keys import api_key_create
from core.accounts.tokens import access_token_for
from core.platform.state import platform_ready_set
from core.switches.store import core_value_set
from xbit_admin import order_lane
from xbit_admin.asgi import application, django_asgi_app

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("internalization_on", "_lane_connections_closed"),
]

PATH = "/api/v1/orders"
VOLATILE_HEADERS = {"x-request-id", "content-length", "ratelimit-remaining", "ratelimit-reset"}
VOLATILE_FIELDS = {"id", "created_at", "updated_at", "position_id", "order_id", "expires_at"}


def _call(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def run() -> None:
        await application(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], names, content


def _normalised(content: bytes) -> Any:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("…" if k in VOLATILE_FIELDS else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(json.loads(content))


def _bearer(user: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {access_token_for(user)}", "content-type": "application/json"}


def _signed(key_id: str, secret: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    return {
        hmac_auth.HEADER_KEY: key_id,
        hmac_auth.HEADER_TIMESTAMP: ts,
        hmac_auth.HEADER_SIGNATURE: hmac_auth.sign(secret, timestamp=ts, method="POST", path=PATH, body=body),
        "content-type": "application/json",
    }


def _both(
    make_user: Callable[[], Any], request: Callable[[Any], tuple[bytes, dict[str, str]]], *, repeat: int = 1
) -> tuple[list[tuple[int, dict[str, str], bytes]], list[tuple[int, dict[str, str], bytes]], int]:
    """The same request(s) by a fresh trader through the lane, then by another through Django."""
    answers: dict[bool, list[tuple[int, dict[str, str], bytes]]] = {}
    taken = 0
    for lane in (True, False):
        user = make_user()
        with override_settings(ORDER_LANE=lane):
            before = order_lane.taken
            answers[lane] = [_call(*request(user)) for _ in range(repeat)]
            if lane:
                taken = order_lane.taken - before
    return answers[True], answers[False], taken


def _assert_same(
    lane: list[tuple[int, dict[str, str], bytes]], full: list[tuple[int, dict[str, str], bytes]]
) -> None:
    for (s1, h1, b1), (s2, h2, b2) in zip(lane, full, strict=True):
        assert s1 == s2, (b1, b2)
        assert _normalised(b1) == _normalised(b2)
        assert set(h1) == set(h2), set(h1) ^ set(h2)
        for name in set(h1) - VOLATILE_HEADERS:
            assert h1[name] == h2[name], name


@pytest.fixture
def _lane_connections_closed() -> Any:
    yield
    order_lane.close_connections()
    for executor in list(django_asgi_app._idle):  # the full path's request threads
        executor.submit(connections.close_all).result(timeout=10)


MARKET = {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.001"}


@pytest.fixture
def funded(
    make_trader: Any, fund: Callable[[Any, str], None], set_quote: Callable[..., None]
) -> Callable[[], Any]:
    set_quote("BTC", "80000")
    set_quote("ETH", "3000")

    def _make() -> Any:
        user = make_trader()
        fund(user, "100000")
        return user

    return _make


@pytest.mark.parametrize(
    ("body", "taken"),
    [
        (MARKET, 1),
        ({**MARKET, "type": "LIMIT", "limit_price": "70000", "time_in_force": "GTC"}, 1),
        ({**MARKET, "side": "SELL", "margin_mode": "ISOLATED", "leverage": 5, "slippage_bps": 50}, 1),
        ({**MARKET, "size": "5000"}, 1),  # INSUFFICIENT_MARGIN from the service
        ({**MARKET, "symbol": "NOPE"}, 1),  # UNKNOWN_SYMBOL from the service
        ({**MARKET, "size": "0.0001"}, 1),  # MIN_NOTIONAL
        ({**MARKET, "size": "1e5"}, 0),  # malformed: Django's serializer answers
        ({**MARKET, "size": " 0.001"}, 0),
        ({**MARKET, "leverage": "5"}, 0),
        ({**MARKET, "leverage": None}, 0),
        ({**MARKET, "reduce_only": "true"}, 0),
        ({**MARKET, "colour": "red"}, 0),  # an unknown key: DRF ignores it, the lane leaves it to DRF
        ({"symbol": "BTC", "side": "BUY"}, 0),
        ({**MARKET, "type": {}}, 0),  # unhashable where a choice is expected (make fuzz found a 500)
        ({**MARKET, "side": ["BUY"], "margin_mode": {}, "time_in_force": []}, 0),
        ([MARKET], 0),
    ],
)
def test_the_lane_answers_as_the_full_path(
    funded: Callable[[], Any], body: dict[str, Any], taken: int
) -> None:
    raw = json.dumps(body).encode()
    lane, full, took = _both(funded, lambda user: (raw, _bearer(user)))
    _assert_same(lane, full)
    assert took == taken


def test_a_retry_with_the_same_client_order_id_answers_the_same_order(funded: Callable[[], Any]) -> None:
    raw = json.dumps({**MARKET, "client_order_id": "lane-retry-1"}).encode()
    lane, full, took = _both(funded, lambda user: (raw, _bearer(user)), repeat=2)
    _assert_same(lane, full)
    assert took == 2 and json.loads(lane[0][2])["id"] == json.loads(lane[1][2])["id"]


def test_credentials_refused_or_short_of_permission_answer_alike(funded: Callable[[], Any]) -> None:
    raw = json.dumps(MARKET).encode()
    bad = {"authorization": "Bearer not-a-token", "content-type": "application/json"}
    lane, full, took = _both(funded, lambda user: (raw, bad))
    _assert_same(lane, full)
    assert lane[0][0] == 401 and "www-authenticate" in lane[0][1] and took == 1

    def read_only(user: Any) -> tuple[bytes, dict[str, str]]:
        key, secret = api_key_create(user=user, label="ro", permissions=["read"])
        return raw, _signed(key.key_id, secret, raw)

    lane, full, took = _both(funded, read_only)
    _assert_same(lane, full)
    assert lane[0][0] == 403 and json.loads(lane[0][2])["code"] == "API_KEY_PERMISSION" and took == 1


def test_a_signed_order_is_placed_and_its_replay_refused(funded: Callable[[], Any]) -> None:
    raw = json.dumps(MARKET).encode()
    signed: dict[int, dict[str, str]] = {}

    def trade_key(user: Any) -> tuple[bytes, dict[str, str]]:
        if user.pk not in signed:
            key, secret = api_key_create(user=user, label="bot", permissions=["read", "trade"])
            signed[user.pk] = _signed(key.key_id, secret, raw)
        return raw, signed[user.pk]

    lane, full, took = _both(funded, trade_key, repeat=2)
    _assert_same(lane, full)
    assert [a[0] for a in lane] == [201, 401] and json.loads(lane[1][2])["code"] == "REPLAYED_REQUEST"
    assert took == 2


def test_not_acceptable_and_the_platform_gate_answer_alike(funded: Callable[[], Any]) -> None:
    raw = json.dumps(MARKET).encode()
    lane, full, took = _both(funded, lambda user: (raw, {**_bearer(user), "accept": "text/html"}))
    _assert_same(lane, full)
    assert lane[0][0] == 406 and took == 1

    platform_ready_set(ready=False, reason="HL resync")
    lane, full, took = _both(funded, lambda user: (raw, _bearer(user)))
    _assert_same(lane, full)
    assert lane[0][0] == 503 and json.loads(lane[0][2])["code"] == "SERVICE_UNAVAILABLE" and took == 1


def test_the_content_security_policy_follows_its_settings(
    funded: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane keeps the policy header it built (``_SettledCsp``): a changed policy, or a report-only
    one added, must show at once and as the full path writes it."""
    # eleven orders from one address: which of its budgets is the tightest (user or address) changes
    # between the lane's answers and Django's, as it would between any two requests
    monkeypatch.setattr(
        sys.modules[__name__], "VOLATILE_HEADERS", VOLATILE_HEADERS | {"ratelimit-policy", "ratelimit-limit"}
    )
    raw = json.dumps(MARKET).encode()
    lane, full, _ = _both(funded, lambda user: (raw, _bearer(user)), repeat=2)
    _assert_same(lane, full)
    before = lane[1][1]["content-security-policy"]
    assert "default-src 'self'" in before
    policy = {"DIRECTIVES": {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy, CONTENT_SECURITY_POLICY_REPORT_ONLY=policy):
        lane, full, took = _both(funded, lambda user: (raw, _bearer(user)), repeat=2)
    _assert_same(lane, full)
    assert took == 2
    for _status, headers, _body in lane:
        directives = set(headers["content-security-policy"].split("; "))  # in no fixed order
        assert directives == {"default-src 'none'", "frame-ancestors 'none'"}
        assert headers["content-security-policy-report-only"] == headers["content-security-policy"]
    lane, full, _ = _both(funded, lambda user: (raw, _bearer(user)))
    _assert_same(lane, full)
    assert (
        lane[0][1]["content-security-policy"] == before
        and "content-security-policy-report-only" not in lane[0][1]
    )


def test_api_modes_are_left_to_django(funded: Callable[[], Any]) -> None:
    raw = json.dumps(MARKET).encode()
    core_value_set(name="api_mode", value="REDUCE_ONLY", acting_user=None, reason="test")
    lane, full, took = _both(funded, lambda user: (raw, _bearer(user)))
    _assert_same(lane, full)
    assert lane[0][0] == 403 and json.loads(lane[0][2])["code"] == "REDUCE_ONLY" and took == 0


def test_an_unexpected_failure_is_djangos_500_both_ways(
    funded: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(user: Any, fields: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("trading.api.orders.order_place_validated", broken)
    monkeypatch.setattr("xbit_admin.order_lane.order_place_validated", broken)
    raw = json.dumps(MARKET).encode()
    lane, full, took = _both(funded, lambda user: (raw, _bearer(user)))
    assert lane[0][0] == full[0][0] == 500 and took == 1
    assert lane[0][2] == full[0][2]
    assert set(lane[0][1]) == set(full[0][1])


def test_the_lane_never_takes_a_body_the_serializer_would_refuse_or_read_differently() -> None:
    """``lane_body`` against ``OrderInputSerializer`` itself over generated bodies: whatever the lane
    takes, the serializer validates to the same values (the lane reads its rules from the serializer's
    fields; this holds them to it)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from core.errors import ApplicationError
    from trading.api.orders import OrderInputSerializer
    from xbit_admin.order_lane import lane_body

    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-5, max_value=300),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.sampled_from(
            ["BTC", "ETH", "BUY", "SELL", "MARKET", "LIMIT", "CROSS", "ISOLATED", "GTC", "IOC", "ALO"]
        ),
        st.sampled_from(
            ["0.001", "1", "0", "-1", "1e3", " 1", "1.123456789", "70000", "", "١", "12345678901"]
        ),
        st.text(max_size=70),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
    names = ["symbol", "side", "type", "size", "limit_price", "leverage", "margin_mode", "reduce_only"]
    names += ["time_in_force", "slippage_bps", "client_order_id", "position_id"]
    base = st.fixed_dictionaries(
        {
            "symbol": st.sampled_from(["BTC", "ETH"]),
            "side": st.sampled_from(["BUY", "SELL"]),
            "type": st.sampled_from(["MARKET", "LIMIT"]),
            "size": st.sampled_from(["0.001", "1", "0.5"]),
        }
    )
    bodies = st.builds(
        lambda b, changes, dropped: {k: v for k, v in {**b, **changes}.items() if k not in dropped},
        base,
        st.dictionaries(st.sampled_from(names), values, max_size=4),
        st.sets(st.sampled_from(names), max_size=1),
    )
    taken = []

    @settings(max_examples=3000, deadline=None, database=None)
    @given(bodies)
    def check(body: dict[str, Any]) -> None:
        lane = lane_body(json.dumps(body).encode())
        if lane is None:
            return
        taken.append(1)
        serializer = OrderInputSerializer(data=body)
        try:
            assert serializer.is_valid(), (body, serializer.errors)
        except ApplicationError as exc:  # a DecimalStringField refusal
            raise AssertionError((body, exc.code)) from None
        assert dict(serializer.validated_data) == lane, body

    check()
    assert len(taken) > 300, len(taken)  # the generator does reach bodies the lane takes
