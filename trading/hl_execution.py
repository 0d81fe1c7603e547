"""HYPERLIQUID execution (spec 02): relaying orders through the platform's HL trading account.

Built by the HYPERLIQUID-execution issue; until then the order path asks ``available()`` and rejects
HL-routed orders with NO_ROUTE, as the trading-core issue specifies."""

from __future__ import annotations

from typing import Any


def available() -> bool:
    return False


def submit(*, order: Any, market: Any, quote: Any) -> Any:
    raise NotImplementedError("HYPERLIQUID execution is not built yet")


def cancel(*, order: Any) -> Any:
    raise NotImplementedError("HYPERLIQUID execution is not built yet")
