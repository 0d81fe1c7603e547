"""The registry of the feed's subscribers (:data:`FEED_HOOKS`); see :mod:`trading.feed` for the API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from trading.feed.metrics import FEED_HOOK_ERRORS
from trading.marketdata import Quote

logger = logging.getLogger(__name__)

BookHook = Callable[[str, Quote], None]
ReconnectHook = Callable[[], None]
DisconnectHook = Callable[[float], None]


class FeedHooks:
    """Registry of subscribers to the feed. ``on_*`` register (usable as decorators), ``remove``
    unregisters, ``fire_*`` are called by the feed."""

    def __init__(self) -> None:
        self.book: list[BookHook] = []
        self.mark: list[BookHook] = []
        self.reconnect: list[ReconnectHook] = []
        self.disconnect: list[DisconnectHook] = []
        self._log_after: dict[int, float] = {}

    def on_book(self, fn: BookHook) -> BookHook:
        self.book.append(fn)
        return fn

    def on_mark(self, fn: BookHook) -> BookHook:
        self.mark.append(fn)
        return fn

    def on_reconnect(self, fn: ReconnectHook) -> ReconnectHook:
        self.reconnect.append(fn)
        return fn

    def on_disconnect(self, fn: DisconnectHook) -> DisconnectHook:
        self.disconnect.append(fn)
        return fn

    def remove(self, fn: Callable[..., None]) -> None:
        for hooks in (self.book, self.mark, self.reconnect, self.disconnect):
            while fn in hooks:
                hooks.remove(fn)

    def _call(self, kind: str, hooks: list[Any], *args: Any) -> None:
        for fn in tuple(hooks):
            try:
                fn(*args)
            except Exception:
                FEED_HOOK_ERRORS.labels(kind).inc()
                # a broken book hook fails on every message: one traceback per hook per 10 s
                now = time.monotonic()
                key = id(fn)
                if now >= self._log_after.get(key, 0.0):
                    self._log_after[key] = now + 10.0
                    logger.exception("feed %s hook %s failed", kind, getattr(fn, "__qualname__", fn))

    def fire_book(self, asset: str, quote: Quote) -> None:
        if self.book:
            self._call("book", self.book, asset, quote)

    def fire_mark(self, asset: str, quote: Quote) -> None:
        if self.mark:
            self._call("mark", self.mark, asset, quote)

    def fire_reconnect(self) -> None:
        self._call("reconnect", self.reconnect)

    def fire_disconnect(self, seconds_down: float) -> None:
        self._call("disconnect", self.disconnect, seconds_down)


FEED_HOOKS = FeedHooks()
