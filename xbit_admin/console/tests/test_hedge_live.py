"""The hedge page's live account health: every HL account snapshot (here: the one a manual hedge takes
against the sandbox's HL hedge account) is pushed on the ``hl_accounts`` topic to staff who may see risk,
within a second of being written; bursts are coalesced to ≤ 4 sends per second per socket, newest
state per account last."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from core.accounts.roles import Role
from core.live import broadcast_now
from sandbox.testing import SandboxProcess
from trading.models import HLAccountSnapshot
from xbit_admin.console.tests.test_topics_consumer import _next, _open, _scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with SandboxProcess(seed=41, config={"hyperliquid": {"clock": "real"}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def hedge_account(sandbox_url: str, settings: Any) -> Iterator[str]:
    """Our HL accounts on the sandbox (the SDK, a fresh agent each), ETH quoted from HL's own book."""
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.marketdata import quote_update
    from trading.markets import hl_info, markets_sync
    from trading.venues.hl import reset_gateways

    settings.HL_API_URL = sandbox_url
    settings.HL_TIMEOUT_SECONDS = 3.0
    requests.post(f"{sandbox_url}/control/reset", json={}, timeout=10).raise_for_status()
    requests.post(f"{sandbox_url}/control/prices/pause", json={}, timeout=10).raise_for_status()
    reset_gateways()
    markets_sync(info=hl_info(base_url=sandbox_url))
    hl_sandbox_accounts_setup(base_url=sandbox_url)
    book = requests.post(f"{sandbox_url}/info", json={"type": "l2Book", "coin": "ETH"}, timeout=10).json()
    mid = (Decimal(book["levels"][0][0]["px"]) + Decimal(book["levels"][1][0]["px"])) / 2
    quote_update(
        "ETH",
        mark=mid,
        oracle=mid,
        mid=mid,
        bid=mid - 1,
        ask=mid + 1,
        bid_size=Decimal(1),
        ask_size=Decimal(1),
    )
    yield sandbox_url
    reset_gateways()


async def _updates_for(
    communicator: WebsocketCommunicator, *accounts: str, seconds: float, until: Any = None
) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, data) of every hl_accounts update for ``accounts`` within ``seconds`` (other test
    runs share the Redis pub/sub, so updates are picked by account), stopping early when ``until(data)``."""
    got: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await communicator.receive_json_from(timeout=left)
        except TimeoutError:
            break
        data = message.get("data") or {}
        if (
            message.get("type") == "update"
            and message.get("topic") == "hl_accounts"
            and data.get("account") in accounts
        ):
            got.append((time.monotonic(), data))
            if until is not None and until(data):
                break
    return got


async def _close(communicator: WebsocketCommunicator) -> None:
    # a receive that timed out has already stopped the consumer (asgiref cancels it): nothing to close
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.disconnect()


def test_a_hedge_account_snapshot_reaches_the_hedge_page_within_a_second(
    make_staff: Any, console_as: Any, hedge_account: str
) -> None:
    from risk.hedge_orders import hedge_manual_order

    manager = make_staff(Role.RISK_MANAGER)
    scope = _scope(manager)

    async def run() -> list[tuple[float, dict[str, Any]]]:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["hl_accounts"]})
        assert (await _next(communicator, "subscribed"))["topics"] == ["hl_accounts"]
        # a manual hedge: HL fills it, the hedge mirror re-reads the account and snapshots it
        instruction = await sync_to_async(hedge_manual_order)(
            acting_user=manager, asset="ETH", side="SELL", notional="20000", reason="live push test"
        )
        assert instruction.status == "FILLED", instruction.error
        got = await _updates_for(
            communicator, "hedge", seconds=3, until=lambda d: d.get("margin_ratio") is not None
        )
        await _close(communicator)
        return got

    got = async_to_sync(run)()
    assert got, "no hl_accounts push for the hedge account"
    arrived, data = got[-1]
    snapshot = HLAccountSnapshot.objects.filter(account="hedge").order_by("-created_at").first()
    assert snapshot is not None and snapshot.margin_ratio is not None  # a position: a margin ratio
    assert data["at"] == pytest.approx(snapshot.created_at.timestamp(), abs=1e-3)
    assert Decimal(data["margin_ratio"]) == snapshot.margin_ratio
    assert Decimal(data["account_value"]) == snapshot.account_value
    assert Decimal(data["withdrawable"]) == snapshot.withdrawable
    # data age on arrival: written → on the socket in well under a second
    age = time.time() - (time.monotonic() - arrived) - data["at"]
    assert age < 1.0, f"the snapshot reached the socket {age:.3f} s after it was written"

    html = console_as(Role.RISK_MANAGER).get("/hedge/").content.decode()
    health = html.split('id="hedge-health"')[1].split("</section>")[0]
    assert 'data-live-account="hedge"' in html and "console/hedge_live.js" in html
    assert f"{snapshot.margin_ratio * 100:,.0f}%" in health and 'data-field="margin_ratio"' in health
    assert f'data-ts="{snapshot.created_at.timestamp():.3f}"' in health  # its age, kept current


def test_a_burst_is_coalesced_to_the_newest_state_per_account(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.DATA_ANALYST))
    a, b = f"burst-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[list[Any], list[Any], float]:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["hl_accounts"]})
        assert (await _next(communicator, "subscribed"))["topics"] == ["hl_accounts"]
        sent = time.monotonic()
        for n in range(1, 11):
            await sync_to_async(broadcast_now)("hl_accounts", {"account": a, "margin_ratio": str(n), "at": n})
        await sync_to_async(broadcast_now)("hl_accounts", {"account": b, "margin_ratio": "7", "at": 1})
        seen: set[tuple[str, str]] = set()

        def both_newest(data: dict[str, Any]) -> bool:
            seen.add((data["account"], data["margin_ratio"]))
            return {(a, "10"), (b, "7")} <= seen

        got = await _updates_for(communicator, a, b, seconds=2.0, until=both_newest)
        await _close(communicator)
        return [g for g in got if g[1]["account"] == a], [g for g in got if g[1]["account"] == b], sent

    got_a, got_b, sent = async_to_sync(run)()
    values = [d["margin_ratio"] for _, d in got_a]
    assert values[0] == "1" and values[-1] == "10"  # the first at once, the newest last
    assert len(values) <= 3, values  # not ten: the rest were superseded within the 250 ms window
    assert got_a[-1][0] - sent < 0.8  # the newest state is out within the throttle interval
    assert [d["margin_ratio"] for _, d in got_b] == ["7"]  # another account is not lost in the burst


@pytest.mark.parametrize(("role", "allowed"), [(Role.DATA_ANALYST, True), (Role.SUPPORT, False)])
def test_only_staff_who_see_risk_follow_the_hl_accounts(make_staff: Any, role: Role, allowed: bool) -> None:
    scope = _scope(make_staff(role))

    async def run() -> dict[str, Any]:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["hl_accounts"]})
        answer = await _next(communicator, "subscribed")
        await communicator.disconnect()
        return answer

    answer = async_to_sync(run)()
    assert (answer["topics"] == ["hl_accounts"]) is allowed
    assert (answer["refused"] == ["hl_accounts"]) is not allowed
