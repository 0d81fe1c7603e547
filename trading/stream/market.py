"""The public market stream (``ws/v1/market``): per asset the prices traders are filled against — mark,
oracle, mid, best bid/ask, funding rate — from the feed's quote cache (``trading.marketdata``).

One hub task per web process polls the quotes of the assets someone follows, once per
``market_interval_ms`` (one pipelined Redis read for all of them), and sends an asset's frame — encoded
once — to its followers only when it changed: at most one update per asset per interval, whatever the
feed's rate, and no task or Redis subscription per socket."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async

from core.errors import ErrorCode
from trading.marketdata import Quote, get_quotes
from trading.selectors import markets_list
from trading.stream.base import StreamSocket
from trading.stream.config import stream_settings

ALL = "*"

logger = logging.getLogger(__name__)


def market_frame(quote: Quote) -> dict[str, Any]:
    stamps = [s for s in (quote.mark_at, quote.book_at, quote.mid_at, quote.ctx_at) if s is not None]

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "type": "market",
        "asset": quote.asset,
        "mark": text(quote.mark),
        "oracle": text(quote.oracle),
        "mid": text(quote.mid),
        "best_bid": text(quote.bid),
        "best_ask": text(quote.ask),
        "funding_rate": text(quote.funding_rate),
        "ts": int(max(stamps) * 1000) if stamps else None,
    }


def listed() -> list[str]:
    return [m.asset for m in markets_list()]


class MarketHub:
    def __init__(self) -> None:
        self.followers: dict[MarketStreamConsumer, set[str]] = {}
        self.last: dict[str, str] = {}  # asset -> the last frame's text (change detection)
        self.task: asyncio.Task[None] | None = None

    def follow(self, socket: MarketStreamConsumer, assets: set[str]) -> None:
        self.followers.setdefault(socket, set()).update(assets)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self.run())

    def drop(self, socket: MarketStreamConsumer) -> None:
        self.followers.pop(socket, None)

    async def run(self) -> None:
        while self.followers:
            config = await database_sync_to_async(stream_settings)()
            await asyncio.sleep(config.market_interval_s)
            try:
                await self.tick()
            except Exception:  # a failed read (Redis away) must not end the stream; the next one retries
                logger.exception("market stream tick failed")
        self.task = None

    async def tick(self) -> None:
        wanted: set[str] = set()
        star = False
        for assets in self.followers.values():
            star = star or ALL in assets
            wanted |= assets - {ALL}
        if star:
            wanted |= set(await database_sync_to_async(listed)())
        quotes = await asyncio.to_thread(get_quotes, sorted(wanted))
        changed: dict[str, str] = {}
        for asset, quote in quotes.items():
            text = json.dumps(market_frame(quote), separators=(",", ":"))
            if self.last.get(asset) != text:
                self.last[asset] = text
                changed[asset] = text
        if not changed:
            return
        for socket, assets in list(self.followers.items()):
            for asset, text in changed.items():
                if asset in assets or ALL in assets:
                    await socket.send_market(text)


HUB = MarketHub()


class MarketStreamConsumer(StreamSocket):
    """``{"op": "subscribe", "assets": ["BTC", …] | ["*"]}`` → a snapshot frame per asset, then updates."""

    async def connect(self) -> None:
        config = await database_sync_to_async(stream_settings)()
        self.max_messages_per_second = config.max_messages_per_second
        await super().connect()

    async def receive_op(self, op: str, message: dict[str, Any], request_id: Any) -> None:
        if op == "ping":
            await self.pong(request_id)
            return
        if op not in ("subscribe", "unsubscribe"):
            await self.send_error(ErrorCode.BAD_MESSAGE, f"Unknown op {op!r}.", request_id)
            return
        assets = message.get("assets")
        if not isinstance(assets, list) or not assets or not all(isinstance(a, str) for a in assets):
            await self.send_error(
                ErrorCode.BAD_SUBSCRIPTION, '"assets" is a non-empty list of assets or ["*"].', request_id
            )
            return
        names = {a.upper() for a in assets}
        if op == "unsubscribe":
            HUB.followers.get(self, set()).difference_update(names)
            await self.send_json(
                {"type": "unsubscribed", "id": request_id, "assets": sorted(HUB.followers.get(self, set()))}
            )
            return
        known = set(await database_sync_to_async(listed)())
        unknown = sorted(names - known - {ALL})
        if unknown:
            await self.send_error(
                ErrorCode.UNKNOWN_SYMBOL, f"Unknown asset(s): {', '.join(unknown)}.", request_id
            )
            return
        HUB.follow(self, names)
        await self.send_json({"type": "subscribed", "id": request_id, "assets": sorted(HUB.followers[self])})
        first = sorted(known if ALL in names else names)
        for quote in (await asyncio.to_thread(get_quotes, first)).values():
            await self.send_json({**market_frame(quote), "snapshot": True})

    async def send_market(self, text: str) -> None:
        if not self.closing:
            await self.send(text_data=text)

    async def disconnect(self, code: int) -> None:
        HUB.drop(self)
