"""HL messages to quotes: ``l2Book``, ``activeAssetCtx`` and ``allMids`` written to Redis
(``trading.marketdata``), mirrored in memory, handed to the book and mark hooks, and pushed to the
consoles in batches; the oracle also to its history dated on HL's clock (``trading.feed.oracles``)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from core.live import broadcast_now
from trading import marketdata
from trading.feed.metrics import FEED_ERRORS, FEED_MESSAGES
from trading.feed.oracles import ORACLE_RECORD_EVERY_MS, oracle_record
from trading.feed.state import AssetState, FeedState
from trading.marketdata import Quote

logger = logging.getLogger(__name__)


class FeedQuotes(FeedState):
    """Message handling (the websocket thread) and quote publishing."""

    def _on_message(self, gen: int, msg: Any) -> None:
        received = time.time()
        if gen != self._gen:
            return
        self._last_msg_mono = time.monotonic()
        self._last_msg_wall = received
        self._messages += 1
        self._first_data.set()
        try:
            channel = msg.get("channel")
            FEED_MESSAGES.labels(channel).inc()
            with self._write_lock:
                if channel == "l2Book":
                    self._on_book(msg["data"], received)
                elif channel == "activeAssetCtx":
                    self._on_ctx(msg["data"], received)
                elif channel == "allMids":
                    self._on_mids(msg["data"]["mids"], received)
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("message").inc()
            self._log_throttled("feed could not handle a %s message", msg.get("channel"))
        if self._refill_due:
            self._refill()

    def _on_book(self, data: dict[str, Any], received: float) -> None:
        asset = data["coin"]
        st = self._state.get(asset)
        if st is None or asset not in self._asset_set:
            return
        n = self.options.depth_levels
        raw_bids, raw_asks = data["levels"][0][:n], data["levels"][1][:n]
        bids = tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in raw_bids)
        asks = tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in raw_asks)
        hl_time = data.get("time")
        if hl_time:
            self._hl_time_ms = int(hl_time)  # HL's clock: dates the context that follows (oracles)
        latency_ms = self._latency_now
        values = {
            "bid": bids[0][0] if bids else None,
            "bid_size": bids[0][1] if bids else None,
            "ask": asks[0][0] if asks else None,
            "ask_size": asks[0][1] if asks else None,
            "depth_bids": bids,
            "depth_asks": asks,
            "book_time_ms": int(hl_time) if hl_time else None,
            "book_latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
        }
        written = {
            **values,
            "depth_bids": ",".join(f"{lv['px']}:{lv['sz']}" for lv in raw_bids),
            "depth_asks": ",".join(f"{lv['px']}:{lv['sz']}" for lv in raw_asks),
        }
        self._write({asset: written}, received)
        with self._lock:
            st.values.update(values, book_at=received)
            st.dirty_push = True
            quote = Quote(asset, **st.values)
        self.hooks.fire_book(asset, quote)

    def _on_ctx(self, data: dict[str, Any], received: float) -> None:
        asset = data["coin"]
        st = self._state.get(asset)
        if st is None or asset not in self._asset_set:
            return
        ctx = data["ctx"]
        mark = Decimal(ctx["markPx"]) if ctx.get("markPx") else None
        values: dict[str, Any] = {
            "mark": mark,
            "oracle": Decimal(ctx["oraclePx"]) if ctx.get("oraclePx") else None,
            "funding_rate": Decimal(ctx["funding"]) if ctx.get("funding") is not None else None,
            "premium": Decimal(ctx["premium"]) if ctx.get("premium") is not None else None,
            "open_interest": Decimal(ctx["openInterest"]) if ctx.get("openInterest") is not None else None,
        }
        if ctx.get("midPx"):
            values["mid"] = Decimal(ctx["midPx"])
        record = mark is not None and (
            mark != st.last_mark or received - st.mark_recorded_at >= self.options.mark_history_every_s
        )
        self._write({asset: values}, received, record_mark=record)
        with self._lock:
            if record:
                st.mark_recorded_at = received
            st.last_mark = mark
            st.values.update(values, mark_at=received, ctx_at=received)
            if "mid" in values:
                st.values["mid_at"] = received
            st.dirty_push = True
            quote = Quote(asset, **st.values)
        self.hooks.fire_mark(asset, quote)
        self._record_oracle(st, asset, values["oracle"], received)  # after the hooks: they are the hot path

    def _record_oracle(self, st: AssetState, asset: str, oracle: Decimal | None, received: float) -> None:
        """The oracle into its history, dated by HL's latest timestamp (a context has none): when it
        changed, when HL's clock moved back, or every ``ORACLE_RECORD_EVERY_MS`` of HL's clock."""
        hl_ms, last = self._hl_time_ms, st.oracle_recorded
        if oracle is None or hl_ms is None:
            return
        if last is not None and last[1] == oracle and 0 <= hl_ms - last[0] < ORACLE_RECORD_EVERY_MS:
            return
        try:
            oracle_record({asset: (hl_ms, received, oracle)})
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("redis").inc()
            self._log_throttled("feed could not write the oracle history to Redis")
            return
        st.oracle_recorded = (hl_ms, oracle)

    def _on_mids(self, mids: dict[str, str], received: float) -> None:
        updates: dict[str, dict[str, Any]] = {}
        with self._lock:
            for asset in self._assets:
                raw = mids.get(asset)
                if raw is None:
                    continue
                st = self._state[asset]
                mid = Decimal(raw)
                if st.values.get("mid") == mid:
                    continue  # unchanged: keep mid_at as the time it was first seen at this value
                st.values["mid"] = mid
                st.values["mid_at"] = received
                updates[asset] = {"mid": raw}
        self._write(updates, received)

    def _write(self, updates: dict[str, dict[str, Any]], at: float, *, record_mark: bool = True) -> None:
        if not updates:
            return
        try:
            if marketdata.quote_update_many(updates, at=at, record_mark=record_mark, feed=self.options.name):
                # Redis holds none of our earlier writes: rewrite all we hold once the message that
                # noticed it is in memory too (after its handler, ``_on_message``)
                self._refill_due = True
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("redis").inc()
            self._log_throttled("feed could not write quotes to Redis")

    def _refill(self) -> None:
        """Write every quote held in memory to Redis, each part with the time it was received (a
        Redis that came back empty after a restart holds them again within one round trip, as fresh
        as they are, not newer). The mark history is not rewritten: it refills as marks arrive."""
        with self._write_lock:
            with self._lock:
                self._refill_due = False
                updates = {asset: dict(self._state[asset].values) for asset in self._assets}
            updates = {asset: values for asset, values in updates.items() if values}
            if not updates:
                return
            try:
                marketdata.quote_update_many(updates, record_mark=False, feed=self.options.name)
            except Exception:
                self._refill_due = True  # the next message tries again
                self._errors += 1
                FEED_ERRORS.labels("redis").inc()
                self._log_throttled("feed could not rewrite its quotes to Redis")
                return
        if self._refilled_before:
            logger.warning(
                "feed %s: Redis came back without its quotes; rewrote %d", self.options.name, len(updates)
            )
        self._refilled_before = True

    def _check_filled(self) -> None:
        """Every ``refill_check_s`` (the supervisor's tick): a Redis that came back empty while no
        message arrived is refilled too."""
        now = time.monotonic()
        if now - self._refill_checked < self.options.refill_check_s:
            return
        self._refill_checked = now
        try:
            held = marketdata.client().hexists(marketdata.FILLED_KEY, self.options.name)
        except Exception:
            self._log_throttled("feed could not reach Redis to look for its quotes")
            return
        if not held:
            self._refill()

    def stale_assets(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        limit = self.options.stale_after_s
        out = []
        for asset in self._assets:
            values = self._state[asset].values
            book_at, mark_at = values.get("book_at"), values.get("mark_at")
            if book_at is None or mark_at is None or now - book_at > limit or now - mark_at > limit:
                out.append(asset)
        return out

    def _push_console(self) -> None:
        if not self.options.push_console:
            return
        now = time.monotonic()
        if now - self._push_at < self.options.push_interval_s:
            return
        self._push_at = now
        quotes: dict[str, dict[str, Any]] = {}
        with self._lock:
            for asset in self._assets:
                st = self._state[asset]
                if not st.dirty_push:
                    continue
                st.dirty_push = False
                v = st.values
                quotes[asset] = {
                    key: v.get(key)
                    for key in (
                        "mark",
                        "oracle",
                        "mid",
                        "bid",
                        "ask",
                        "funding_rate",
                        "open_interest",
                        "mark_at",
                    )
                }
        if not quotes:
            return
        try:
            broadcast_now("markets", {"quotes": quotes, "at": time.time()})
        except Exception:
            self._log_throttled("feed console push failed")
