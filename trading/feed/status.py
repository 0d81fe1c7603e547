"""What the feed reports about itself: its ``FeedStatus`` row (at most once per ``status_interval_s``)
and the ops alert ``marketdata.feed_down`` (P1) while it is down."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from core.alerts.services import alert_raise, alert_resolve_condition
from trading.feed.latency import FeedLatency
from trading.feed.metrics import FEED_ERRORS, FEED_LAST_MESSAGE
from trading.feed.quotes import FeedQuotes
from trading.models import FeedStatus


class FeedReporting(FeedQuotes, FeedLatency):
    """The status row and the alert; reads the quotes' ages and the latency figures."""

    def _write_status(self, *, force: bool = False, note: str = "") -> None:
        if not self._is_leader_or_free():
            return  # a standby never overwrites the leader's row
        now = time.monotonic()
        if not force and now - self._status_at < self.options.status_interval_s:
            return
        self._status_at = now
        last = self._last_msg_wall
        detail = {
            "url": self.base_url,
            "pid": os.getpid(),
            "assets": len(self._assets),
            "stale_assets": self.stale_assets(),
            "latency_ms": self.latency_summary(),
            "messages": self._messages,
            "errors": self._errors,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "down_since": self._down_since,
            "note": note,
        }
        try:
            FeedStatus.objects.update_or_create(
                name=self.options.name,
                defaults={
                    "connected": self.connected.is_set(),
                    "last_message_at": datetime.fromtimestamp(last, tz=UTC) if last else None,
                    "reconnects": self.reconnects,
                    "detail": detail,
                    "updated_at": datetime.now(tz=UTC),
                },
            )
        except Exception:
            FEED_ERRORS.labels("status").inc()
            self._log_throttled("feed could not write its status")
            self._close_db()
        if last:
            FEED_LAST_MESSAGE.set(last)

    def _alert(self, *, resolve: bool, seconds_down: float = 0.0) -> None:
        try:
            if resolve:
                alert_resolve_condition(rule="marketdata.feed_down", subject=self.options.name)
            else:
                alert_raise(
                    rule="marketdata.feed_down",
                    severity="P1",
                    subject=self.options.name,
                    message=f"No Hyperliquid market data for {seconds_down:.0f} s ({self.last_error}).",
                )
        except Exception:
            self._log_throttled("feed could not raise/resolve its alert")
            self._close_db()
