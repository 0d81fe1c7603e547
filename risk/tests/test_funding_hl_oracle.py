"""An INTERNAL-only coin pays HL's rate on HL's oracle at HL's funding instant (issue 18): neither of our HL
accounts holds the coin, so no oracle can be recovered from what HL paid them; the feed's reading of HL's
oracle, dated on HL's clock, prices the instant — not the quote cache's oracle of when the run happens
(our time), which by then has moved on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from core.money import q_usdc
from risk.funding import funding_tick
from risk.models import FundingRun, FundingSettlement
from routing.services import routing_config_update
from sandbox.testing import SandboxProcess
from trading import margin
from trading.feed.oracles import oracle_at, oracle_history_delete
from trading.feed.state import FeedOptions
from trading.feed.supervisor import Feed
from trading.hl_accounts import hl_sandbox_accounts_setup
from trading.marketdata import get_quote, quote_delete
from trading.markets import hl_info, markets_sync
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue, hl_position
from trading.venues.hl import gateway, reset_gateways

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal
COIN = "SOL"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def manual_url() -> Iterator[str]:
    # HL's default funding: a realistic rate (0.00125 % an hour and the premium)
    with SandboxProcess(seed=47, config={"hyperliquid": {"clock": "manual", "ws_publish_ms": 50}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(manual_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = manual_url
    settings.HL_TIMEOUT_SECONDS = 5.0
    reset_gateways()
    markets_sync(info=hl_info(base_url=manual_url))
    hl_sandbox_accounts_setup(base_url=manual_url)
    routing_config_update(
        asset=COIN,
        changes={"internalization_enabled": True},
        acting_user=None,
        reason="an internal-only coin",
    )
    yield Venue(manual_url)
    reset_gateways()


@pytest.fixture
def feed(venue: Venue) -> Iterator[Feed]:
    """The market-data feed on the simulated HL (a thread), as ``run_feed`` runs it."""
    oracle_history_delete([COIN])
    opts = FeedOptions(base_url=venue.url, assets=[COIN], leader_lock=False, push_console=False)
    running = Feed(opts)
    thread = threading.Thread(target=running.run, name="test-feed", daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the feed did not stop"
    oracle_history_delete([COIN])
    quote_delete([COIN])


def _hl_now(venue: Venue) -> int:
    return int(requests.get(f"{venue.url}/control/time", timeout=5).json()["time"])


def test_an_internal_only_coin_settles_on_hls_oracle_at_hls_instant(
    venue: Venue, feed: Feed, trader: Any
) -> None:
    wait_for(lambda: oracle_at(COIN, _hl_now(venue), 60), 10, "the feed's first oracle reading")
    mid = venue.refresh_quote(COIN)[2]
    order = order_place(
        user=trader,
        inp=order_input(
            asset=COIN,
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(9_000) / mid, 2)),
            leverage=10,
            margin_mode="CROSS",
        ),
    )
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.route, order.error_message)
    position = Position.objects.get(pk=order.position_id)
    hedge = gateway("hedge")
    held = [p["position"]["coin"] for p in hedge.user_state()["assetPositions"]] if hedge else []
    assert hl_position(COIN) == 0 and COIN not in held  # nothing of ours on HL pays funding in the coin

    # HL's hour: HL's oracle then, as HL's engine holds it at the instant
    clock = requests.get(f"{venue.url}/control/time", timeout=5).json()
    venue.control("advance", {"seconds": (clock["nextFundingTime"] - clock["time"]) / 1000})
    at_ms = clock["nextFundingTime"]
    state = requests.get(f"{venue.url}/control/state", timeout=5).json()
    assert state["time"] == at_ms
    oracle = D(state["assets"][COIN]["oracle"])
    reading = wait_for(
        lambda: (r := oracle_at(COIN, at_ms, 60)) is not None and r[0] == at_ms and r, 10, "HL's instant"
    )
    assert reading == (at_ms, oracle)

    # our run comes later (the beat, a busy worker): by then HL's oracle, and our quote cache, moved on
    venue.control("advance", {"seconds": 20})
    venue.control("shock", {"coin": COIN, "pct": 2})
    wait_for(
        lambda: (
            (q := get_quote(COIN)) is not None and q.oracle and abs(q.oracle - oracle) / oracle > D("0.005")
        ),
        10,
        "the quote cache's oracle to move on",
    )

    funding_tick()
    instant = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    run = FundingRun.objects.get(funding_time=instant)
    assert run.status == "COMPLETED"
    assert run.rates[COIN]["source"] == "hl:oracle" and run.rates[COIN]["oracle_time"] == str(at_ms)
    settled = FundingSettlement.objects.get(position=position, funding_time=instant)
    rate = next(
        D(r["fundingRate"])
        for r in requests.post(
            f"{venue.url}/info", json={"type": "fundingHistory", "coin": COIN, "startTime": at_ms}, timeout=5
        ).json()
        if r["time"] == at_ms
    )
    assert abs(rate) < D("0.0001")  # a realistic hourly rate: the payment is cents
    assert settled.rate == rate and settled.price == oracle
    assert settled.payment == q_usdc(margin.funding_payment(margin.Side.LONG, position.size, oracle, rate))
    assert settled.payment != 0
