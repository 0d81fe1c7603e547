"""The Python client is its own package: it imports no Django and nothing of the server's code, so a
trader installs it with httpx and websockets alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xbit_client"
SERVER_PACKAGES = {"django", "rest_framework", "channels", "core", "trading", "wallets", "routing", "risk"}
SERVER_PACKAGES |= {"xbit_admin", "sandbox", "requests"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_client_imports_django_or_the_server() -> None:
    sources = [p for p in PACKAGE.rglob("*.py") if "tests" not in p.parts]
    assert len(sources) >= 5
    for path in sources:
        assert not (_imported_roots(path) & SERVER_PACKAGES), path


def test_importing_the_client_loads_no_django() -> None:
    """In a fresh interpreter (nothing else imported): the whole client, streams included."""
    code = (
        "import sys, xbit_client, xbit_client.stream\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in " + repr(sorted(SERVER_PACKAGES)) + ")\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_the_client_signs_exactly_as_the_server_verifies() -> None:
    """Same bytes, same query (in another order, encoded differently): the same signature as the
    server's own function, which the client does not import."""
    sys.path.insert(0, str(ROOT))
    from core.accounts import hmac_auth  # the server's pure signing function (no Django in it)
    from xbit_client.signing import signature

    body = b'{"symbol":"BTC","size":"0.01"}'
    for query in ("", "status=OPEN&symbol=BTC", "symbol=B%20T&status=OPEN,FILLED&a=", "x=%7E~&x=1"):
        ours = signature(
            "s3cret",
            timestamp="1700000000000",
            method="post",
            path="/api/v1/o",
            query_string=query,
            body=body,
        )
        theirs = hmac_auth.sign(
            "s3cret",
            timestamp="1700000000000",
            method="POST",
            path="/api/v1/o",
            query_string=query,
            body=body,
        )
        assert ours == theirs, query


def test_only_safe_calls_are_retried_and_only_on_passing_refusals() -> None:
    from xbit_client import endpoints as ep
    from xbit_client.core import Core
    from xbit_client.errors import XbitApiError

    core = Core("http://x", max_retries=2, backoff_s=0.1)
    place, withdraw = (
        ep.place_order("BTC", "BUY", "MARKET", "0.01"),
        ep.request_withdrawal("ETH", "USDT", "0x", "1", "1"),
    )
    busy = XbitApiError(503, "SERVICE_UNAVAILABLE", "starting")
    assert place.retryable and place.body["client_order_id"].startswith("xc-")
    assert (
        core.retry_delay(place, 0, busy, sent=True) == 0.1
        and core.retry_delay(place, 1, busy, sent=True) == 0.2
    )
    assert core.retry_delay(place, 2, busy, sent=True) is None  # retries spent
    assert (
        core.retry_delay(place, 0, XbitApiError(503, "NO_ROUTE", "x"), sent=True) is None
    )  # same answer again
    assert core.retry_delay(place, 0, XbitApiError(400, "INVALID_PRICE", "x"), sent=True) is None
    throttled = XbitApiError(429, "RATE_LIMITED", "slow down", {"retry_after": 3})
    assert core.retry_delay(place, 0, throttled, sent=True) == 3
    assert core.retry_delay(withdraw, 0, busy, sent=True) is None  # a second request would be another one
    assert core.retry_delay(withdraw, 0, None, sent=False) == 0.1  # never reached the server


def test_answers_parse_to_decimals_and_keep_unknown_fields() -> None:
    from decimal import Decimal

    from xbit_client.models import Fill
    from xbit_client.parsing import parse

    fill = parse(
        Fill,
        {
            "id": 7,
            "order_id": 3,
            "position_id": None,
            "symbol": "BTC",
            "side": "BUY",
            "size": "0.00100000",
            "price": "80000.10000000",
            "liquidity": "TAKER",
            "fee": "0.036000",
            "realized_pnl": "0",
            "closed_size": "0",
            "is_liquidation": False,
            "created_at": "2026-12-07T00:00:00Z",
            "venue_hint": "x",
        },
    )
    assert fill.price == Decimal("80000.1") and isinstance(fill.fee, Decimal) and fill.position_id is None
    assert fill.created_at.utcoffset() is not None and fill.extra == {"venue_hint": "x"}


def test_the_user_stream_waits_out_a_throttled_sign_in_and_stops_on_a_refused_one() -> None:
    import asyncio

    import pytest

    from xbit_client.errors import XbitApiError, XbitStreamError
    from xbit_client.stream import Backoff, UserStream

    answers = [XbitApiError(429, "RATE_LIMITED", "slow"), XbitApiError(503, "SERVICE_UNAVAILABLE", "busy")]
    answers.append(XbitApiError(401, "INVALID_CREDENTIALS", "no"))
    calls: list[bool] = []

    async def token(force: bool) -> str:
        calls.append(force)
        raise answers[len(calls) - 1]

    async def run() -> None:
        stream = UserStream("http://127.0.0.1:9", token=token, backoff=Backoff(0.01, 0.01, jitter=0))
        async for _ in stream:
            pass

    with pytest.raises(XbitStreamError) as refused:
        asyncio.run(run())
    assert refused.value.code == "INVALID_CREDENTIALS" and len(calls) == 3
