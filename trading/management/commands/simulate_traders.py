"""Demo traffic: many users trading through the real HTTP API with our own client (``xbit_client``,
JWT sign-in and refresh), so the console comes alive and the client is exercised on every run.

Mixed sizes (mostly small → internalized, some large → routed to HL), both sides, market and limit
orders, cancels and closes. Bounded by ``--duration`` (0 = until stopped); prints a line per minute
(``simulate_traders: outcome=count, …``, read by the soak). Never stops the demo on an error: every
refusal or failure is counted under its outcome and the loop goes on.

A few traders (``--watch-streams``) also follow their user stream through the client; the line counts
the events received, the reconnections and the gaps in their sequences (which must stay 0).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
from django.core.management.base import BaseCommand

from trading.demo import DEMO_TRADER_PASSWORD, demo_trader_emails
from trading.margin import round_price
from xbit_client import AsyncClient, Client, UserStream, XbitApiError, XbitError, XbitTransportError

ASSETS = {"BTC": 5, "ETH": 4, "SOL": 2}

logger = logging.getLogger(__name__)


def trader_client(base: str, email: str) -> Client:
    """One demo trader's client: signs in on first use, refreshes its JWT before expiry. One retry
    only: the generator paces itself and a refusal is an outcome to count, not to insist on."""
    return Client(base, email=email, password=DEMO_TRADER_PASSWORD, max_retries=1, backoff_s=0.5)


def summary(stats: dict[str, int], watch: StreamWatch) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted({**stats, **watch.stats()}.items()))


class StreamWatch:
    """Follows some demo traders' user streams (every channel) through the client, in a thread of its
    own. With every channel subscribed the sequence has no holes: ``gaps`` counts each event whose
    sequence is not the previous one + 1 (after a snapshot, its sequence + 1)."""

    def __init__(self, base: str, emails: list[str]) -> None:
        self.base, self.emails = base, emails
        self.events = self.gaps = self.reconnects = self.failures = 0
        self.streams: list[UserStream] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="stream-watch", daemon=True)

    def start(self) -> None:
        if self.emails:
            self.thread.start()

    def stop(self) -> None:
        if self.loop is not None and self.loop.is_running():
            for stream in self.streams:
                asyncio.run_coroutine_threadsafe(stream.close(), self.loop)
            self.thread.join(timeout=5)

    def stats(self) -> dict[str, int]:
        if not self.emails:
            return {}
        reconnects = sum(max(0, s.connections - 1) for s in self.streams)
        return {"stream-events": self.events, "stream-gaps": self.gaps, "stream-reconnects": reconnects}

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await asyncio.gather(*(self._follow(email) for email in self.emails))

        asyncio.run(main())

    async def _follow(self, email: str) -> None:
        client = AsyncClient(self.base, email=email, password=DEMO_TRADER_PASSWORD, max_retries=1)
        stream = UserStream.from_client(client)
        self.streams.append(stream)
        expected: int | None = None
        try:
            async for message in stream:
                if message.kind == "snapshot":
                    expected = message.seq + 1
                    continue
                self.events += 1
                if expected is not None and message.seq != expected:
                    self.gaps += 1
                    logger.warning(
                        "simulate_traders: %s stream gap: seq %s, expected %s", email, message.seq, expected
                    )
                expected = message.seq + 1
        except XbitError as exc:  # refused for good (e.g. the trader cannot sign in): stop following
            self.failures += 1
            logger.warning("simulate_traders: %s stream stopped: %s", email, exc)
        except Exception:  # the demo goes on without this stream
            self.failures += 1
            logger.exception("simulate_traders: %s stream failed", email)
        finally:
            await client.aclose()


class Command(BaseCommand):
    help = "Drive demo traders through the HTTP API (the demo-traffic generator of make run)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--rate", type=float, default=3.0, help="actions per second across all traders")
        parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until stopped")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--traders", type=int, default=0, help="use the first N demo traders; 0 = all")
        parser.add_argument(
            "--watch-streams", type=int, default=2, help="follow the user stream of N of the traders"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        base = options["base_url"].rstrip("/")
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self._wait_for(base)
        emails = demo_trader_emails()[: options["traders"] or None]
        traders = [t for t in (self._signed_in(base, email, lambda: stop) for email in emails) if t]
        if not traders:
            self.stdout.write("simulate_traders stopped: no demo trader could sign in (seed_demo first)")
            return
        signed = [t.core.tokens.email for t in traders if t.core.tokens and t.core.tokens.email]
        watch = StreamWatch(base, signed[: options["watch_streams"]])
        watch.start()
        started = time.monotonic()
        last_report = started
        stats: dict[str, int] = {}
        interval = 1.0 / max(options["rate"], 0.1)
        while not stop and (not options["duration"] or time.monotonic() - started < options["duration"]):
            trader = rng.choice(traders)
            outcome = self._act_safely(trader, rng)
            stats[outcome] = stats.get(outcome, 0) + 1
            if time.monotonic() - last_report > 60:
                self.stdout.write("simulate_traders: " + summary(stats, watch))
                last_report = time.monotonic()
            time.sleep(interval * rng.uniform(0.5, 1.5))
        watch.stop()
        for trader in traders:
            trader.close()
        self.stdout.write("simulate_traders stopped: " + summary(stats, watch))

    def _signed_in(self, base: str, email: str, stopped: Callable[[], bool]) -> Client | None:
        """The trader's client once signed in; None for a trader who cannot (not seeded, locked)."""
        trader = trader_client(base, email)
        while not stopped():
            try:
                trader.me()  # signs in
                return trader
            except XbitApiError as exc:
                if exc.status != 429 and exc.status < 500:
                    logger.warning("simulate_traders: %s cannot sign in (%s), left out", email, exc.code)
                    break
            except XbitTransportError as exc:
                logger.info("simulate_traders: sign-in of %s failed (%s), retrying", email, exc)
            time.sleep(3.5)  # login is throttled per IP: pace ourselves
        trader.close()
        return None

    def _wait_for(self, base: str) -> None:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)

    def _act_safely(self, trader: Client, rng: random.Random) -> str:
        try:
            return self._act(trader, rng)
        except XbitApiError as exc:
            return f"rejected-{exc.code}"
        except XbitTransportError as exc:
            cause = exc.__cause__
            return f"http-error:{type(cause).__name__ if cause else 'transport'}"
        except Exception as exc:  # the demo must go on: count it, log it, next action
            logger.exception("simulate_traders: unexpected error")
            return f"error:{type(exc).__name__}"

    def _act(self, trader: Client, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.15:
            positions = trader.positions()
            if positions:
                position = rng.choice(positions)
                trader.close_position(position.id)
                return "close-ok"
        if roll < 0.22:
            orders = trader.orders(status="OPEN").results
            if orders:
                trader.cancel_order(rng.choice(orders).id)
                return "cancel-ok"
        asset = rng.choices(list(ASSETS), weights=[5, 4, 1])[0]
        quote = trader.market(asset).quote
        mark = quote.mark if quote is not None and quote.mark is not None else Decimal(0)
        if mark <= 0:
            return "no-price"
        # mostly retail-sized tickets; one in eight is large enough to be routed to HL
        notional = (
            Decimal(rng.choice([50, 120, 300, 800, 1500, 3000, 6000, 9000]))
            if rng.random() > 0.125
            else Decimal(rng.choice([15000, 40000]))
        )
        step = Decimal(1).scaleb(-ASSETS[asset])
        size = (notional / mark).quantize(step, rounding=ROUND_DOWN)
        if size <= 0:
            return "too-small"
        side = rng.choice(["BUY", "SELL"])
        leverage = rng.choice([2, 3, 5, 10, 20])
        margin_mode = rng.choice(["CROSS", "CROSS", "ISOLATED"])
        if rng.random() < 0.3:
            offset = Decimal(1) + (
                Decimal(rng.choice([-1, 1])) * Decimal(rng.uniform(0.0005, 0.004))
            ).quantize(Decimal("0.0001"))
            order = trader.place_order(
                asset,
                side,
                "LIMIT",
                size,
                limit_price=round_price(mark * offset, ASSETS[asset]),
                time_in_force="GTC",
                leverage=leverage,
                margin_mode=margin_mode,
            )
        else:
            order = trader.place_order(
                asset, side, "MARKET", size, leverage=leverage, margin_mode=margin_mode
            )
        return f"order-{order.status.lower()}"
