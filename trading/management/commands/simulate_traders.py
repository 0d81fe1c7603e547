"""Demo traffic: many users trading through the real HTTP API (JWT), so the console comes alive.

Mixed sizes (mostly small → internalized, some large → routed to HL), both sides, market and limit
orders, cancels and closes. Bounded by ``--duration`` (0 = until stopped); prints a line per minute.
"""

from __future__ import annotations

import random
import signal
import time
from decimal import ROUND_DOWN, Decimal
from typing import Any

import requests
from django.core.management.base import BaseCommand

from trading.demo import DEMO_TRADER_PASSWORD, demo_trader_emails
from trading.margin import round_price

ASSETS = {"BTC": 5, "ETH": 4, "SOL": 2}


class Trader:
    def __init__(self, base: str, email: str) -> None:
        self.base = base
        self.email = email
        self.session = requests.Session()
        self.refresh = ""
        self.expires = 0.0

    def login(self) -> None:
        response = self.session.post(
            f"{self.base}/api/v1/auth/login",
            json={"email": self.email, "password": DEMO_TRADER_PASSWORD},
            timeout=10,
        )
        response.raise_for_status()
        self._take(response.json())

    def _take(self, pair: dict[str, str]) -> None:
        self.session.headers["Authorization"] = f"Bearer {pair['access']}"
        self.refresh = pair["refresh"]
        self.expires = time.monotonic() + 10 * 60

    def ensure_token(self) -> None:
        if time.monotonic() > self.expires:
            response = self.session.post(
                f"{self.base}/api/v1/auth/refresh", json={"refresh": self.refresh}, timeout=10
            )
            if response.ok:
                self._take(response.json())
            else:
                self.login()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.ensure_token()
        return self.session.request(method, f"{self.base}/api/v1{path}", timeout=10, **kwargs)


class Command(BaseCommand):
    help = "Drive demo traders through the HTTP API (the demo-traffic generator of make run)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--rate", type=float, default=3.0, help="actions per second across all traders")
        parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until stopped")
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        base = options["base_url"].rstrip("/")
        self._wait_for(base)
        traders = [Trader(base, email) for email in demo_trader_emails()]
        for trader in traders:
            while True:
                try:
                    trader.login()
                    break
                except requests.RequestException:
                    time.sleep(3.5)  # login is throttled per IP: pace ourselves
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        started = time.monotonic()
        last_report = started
        stats: dict[str, int] = {}
        interval = 1.0 / max(options["rate"], 0.1)
        while not stop and (not options["duration"] or time.monotonic() - started < options["duration"]):
            trader = rng.choice(traders)
            try:
                outcome = self._act(trader, rng)
            except requests.RequestException as exc:
                outcome = f"http-error:{type(exc).__name__}"
            stats[outcome] = stats.get(outcome, 0) + 1
            if time.monotonic() - last_report > 60:
                self.stdout.write(
                    "simulate_traders: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
                )
                last_report = time.monotonic()
            time.sleep(interval * rng.uniform(0.5, 1.5))
        self.stdout.write(
            "simulate_traders stopped: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
        )

    def _wait_for(self, base: str) -> None:
        for _ in range(120):
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)

    def _act(self, trader: Trader, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.15:
            positions = trader.call("GET", "/positions").json()
            if isinstance(positions, list) and positions:
                position = rng.choice(positions)
                response = trader.call("POST", f"/positions/{position['id']}/close", json={})
                return "close-" + str(response.status_code)
        if roll < 0.22:
            orders = trader.call("GET", "/orders", params={"status": "OPEN"}).json().get("results", [])
            if orders:
                response = trader.call("POST", f"/orders/{rng.choice(orders)['id']}/cancel")
                return "cancel-" + str(response.status_code)
        asset = rng.choices(list(ASSETS), weights=[5, 4, 1])[0]
        market = trader.call("GET", f"/markets/{asset}").json()
        mark = Decimal(str((market.get("quote") or {}).get("mark") or "0"))
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
        body: dict[str, Any] = {
            "symbol": asset,
            "side": rng.choice(["BUY", "SELL"]),
            "size": str(size),
            "leverage": rng.choice([2, 3, 5, 10, 20]),
            "margin_mode": rng.choice(["CROSS", "CROSS", "ISOLATED"]),
        }
        if rng.random() < 0.3:
            offset = Decimal(1) + (
                Decimal(rng.choice([-1, 1])) * Decimal(rng.uniform(0.0005, 0.004))
            ).quantize(Decimal("0.0001"))
            body.update(
                type="LIMIT", limit_price=str(round_price(mark * offset, ASSETS[asset])), time_in_force="GTC"
            )
        else:
            body.update(type="MARKET")
        response = trader.call("POST", "/orders", json=body)
        if response.status_code == 201:
            return f"order-{response.json()['status'].lower()}"
        return "rejected-" + str(response.json().get("code", response.status_code))
