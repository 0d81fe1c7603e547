"""The HL latency breaker against the real simulator, the real feed (SDK websocket) and real Redis and
PostgreSQL: an HL clock 5 s behind or 5 s ahead of ours neither trips nor masks it, a real delay on
the wire trips it and it resets when the delay goes, and a silent feed is still seen as missing data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from risk.breakers import _seconds_since_hl_data, hl_disconnect_check, hl_latency_check
from risk.models import CircuitBreaker
from routing.models import RoutingState
from sandbox.testing import SandboxProcess
from trading import marketdata
from trading.feed.hooks import FeedHooks
from trading.feed.state import FeedOptions
from trading.feed.supervisor import Feed
from trading.markets import hl_info, markets_sync

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ASSETS = ["BTC", "ETH"]
DELAY_MS = 700  # over the default trip level (500 ms)


class HL:
    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def clock_ahead_ms(self) -> float:
        """HL's clock minus ours (the simulator's own time against the midpoint of the request)."""
        t0 = time.time()
        hl_time = requests.get(f"{self.url}/control/time", timeout=10).json()["time"]
        return hl_time - (t0 + time.time()) / 2 * 1000


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def force_hl() -> dict[str, Any]:
    row = RoutingState.objects.filter(asset="*").first()
    return row.force_hl_reasons if row else {}


def latency_ms() -> float:
    return float(CircuitBreaker.objects.get(kind="HL_LATENCY").details["latency_ms"])


@pytest.fixture(params=[-5.0, 5.0], ids=["hl_clock_5s_behind", "hl_clock_5s_ahead"])
def skewed_hl(request: pytest.FixtureRequest) -> Iterator[HL]:
    """A real-time simulator whose clock is 5 s behind ours (started in the past) or 5 s ahead
    (moved forward through the control API)."""
    skew_ms = request.param * 1000
    config: dict[str, Any] = {"ws_publish_ms": 100}
    if skew_ms < 0:
        config["start_time_ms"] = int(time.time() * 1000 + skew_ms)
    with SandboxProcess(seed=7, config={"hyperliquid": config}) as sb:
        hl = HL(sb.urls["hyperliquid"])
        hl.control("advance", {"seconds": max(0.0, (skew_ms - hl.clock_ahead_ms()) / 1000)})
        assert abs(hl.clock_ahead_ms() - skew_ms) < 300
        yield hl


@pytest.fixture
def running_feed() -> Iterator[Callable[..., Feed]]:
    started: list[tuple[Feed, threading.Thread]] = []

    def _start(hl: HL, **options: Any) -> Feed:
        markets_sync(info=hl_info(base_url=hl.url))
        feed = Feed(FeedOptions(base_url=hl.url, assets=ASSETS, **options), hooks=FeedHooks())
        thread = threading.Thread(target=feed.run, name="test-feed", daemon=True)
        thread.start()
        started.append((feed, thread))
        wait_for(
            lambda: (s := marketdata.get_latency("hl")) is not None and len(s.round_trips_ms) >= 3,
            10,
            "three round trips measured",
        )
        return feed

    yield _start
    for feed, thread in started:
        feed.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the feed did not stop"
    marketdata.quote_delete(ASSETS)


def test_a_skewed_hl_clock_neither_trips_nor_masks_the_latency_breaker(
    skewed_hl: HL, running_feed: Callable[..., Feed]
) -> None:
    running_feed(skewed_hl)
    # the skew is there for anyone who subtracts HL's timestamps from ours
    quote = wait_for(lambda: marketdata.get_quote("BTC"), 5, "a BTC quote")
    apparent = quote.book_at * 1000 - quote.book_time_ms
    assert abs(apparent + skewed_hl.clock_ahead_ms()) < 300, apparent

    # at rest: no breaker, whichever way the clock is off
    for _ in range(3):
        assert hl_latency_check() == "OK", latency_ms()
        time.sleep(0.5)
    print(
        f"\nHL clock {skewed_hl.clock_ahead_ms():+.0f} ms off; receipt minus HL time {apparent:+.0f} ms; "
        f"latency judged {latency_ms():.1f} ms"
    )
    assert latency_ms() < 100 and "hl_latency" not in force_hl()

    # a real delay on the wire: tripped, and it stays tripped while the delay lasts
    skewed_hl.control("latency", {"ws_ms": DELAY_MS})
    wait_for(lambda: hl_latency_check() == "TRIPPED", 10, "the latency breaker to trip")
    time.sleep(3.5)  # by now the median of the recent round trips is the delay itself
    assert hl_latency_check() == "TRIPPED" and "hl_latency" in force_hl()
    assert DELAY_MS <= latency_ms() < DELAY_MS + 300

    # the delay goes: reset automatically
    skewed_hl.control("faults/clear")
    wait_for(lambda: hl_latency_check() == "OK", 10, "the latency breaker to reset")
    assert "hl_latency" not in force_hl()


def test_a_silent_feed_is_missing_data_not_latency(
    skewed_hl: HL, running_feed: Callable[..., Feed], make_staff: Any
) -> None:
    """Pongs keep coming while market data stops: the latency is fine, the data is not."""
    from core.accounts.roles import Role
    from risk.config import risk_config_update

    running_feed(skewed_hl, silence_reconnect_s=30.0)
    risk_config_update(
        changes={"disconnect_alert_seconds": 2},
        acting_user=make_staff(Role.RISK_MANAGER),
        reason="test: alert on 2 s of silence",
    )
    skewed_hl.control("ws/pause")
    try:
        wait_for(lambda: _seconds_since_hl_data() > 3, 8, "the feed's last message to age")
        assert hl_disconnect_check() == "WARNING"
        assert hl_latency_check() == "OK", latency_ms()
    finally:
        skewed_hl.control("ws/resume")
