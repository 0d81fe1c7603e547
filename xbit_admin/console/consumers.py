"""Websocket consumers of the console shell."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.accounts.roles import perm
from xbit_admin.console.access import scope_is_verified_staff
from xbit_admin.console.live_overview import overview_fragment

logger = logging.getLogger(__name__)


class HeartbeatConsumer(AsyncJsonWebsocketConsumer):
    """Proves the live channel works end to end: a verified staff session gets a beat every second and
    a reply to each ping (the page shows the round trip and the age of the last message)."""

    interval = 1.0

    async def connect(self) -> None:
        if not await database_sync_to_async(scope_is_verified_staff)(self.scope):
            await self.close(code=4403)
            return
        await self.accept()
        self._task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await self.send_json({"type": "heartbeat", "server_time": time.time()})
            await asyncio.sleep(self.interval)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "echo": content.get("t"), "server_time": time.time()})

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()


# Which permission (any of) lets a staff member follow a topic. A topic not listed here is refused, so
# nothing is pushed to people who could not open the page that shows it.
TOPIC_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "routing": ("view_risk", "manage_routing"),
    "markets": ("view_console",),
    "alerts": ("view_console",),
    "withdrawals": ("approve_withdrawals", "risk_review_withdrawals"),
    "liquidity": ("view_risk", "trigger_aggregation", "manage_liquidity"),
    "exposure": ("view_risk",),
    "hedge": ("view_risk",),
    "liquidations": ("view_risk",),
    "breakers": ("view_console",),
    # each HL account snapshot (trading.hl_accounts): margin ratio, account value; the hedge page
    "hl_accounts": ("view_risk",),
    # served by the consumer itself: the overview's live region, re-read from the database on a timer
    "overview": ("view_console",),
}


# Topics whose pushes are state snapshots: at most one send per interval per topic and socket (≤ 4/s);
# updates in between are coalesced — the newest per subject (the payload field named here) goes out
# when the interval has passed, so a burst costs one message per subject and nothing is lost but
# superseded states.
TOPIC_THROTTLE: dict[str, tuple[float, str]] = {
    "hl_accounts": (0.25, "account"),
}


class ConsoleTopicsConsumer(HeartbeatConsumer):
    """The page's one live socket when it follows topics: the heartbeat (beats, pong) plus
    ``{"type": "subscribe", "topics": [...]}`` → joins the Channels groups ``console.<topic>`` the
    staff member may see, and forwards each ``console.update`` as ``{"type": "update", "topic", "data"}``."""

    max_topics = 16
    overview_interval = 1.0

    async def connect(self) -> None:
        self.topics: set[str] = set()
        self._overview_task: asyncio.Task[None] | None = None
        self._pending: dict[str, dict[Any, Any]] = {}
        self._last_sent: dict[str, float] = {}
        self._flushes: dict[str, asyncio.Task[None]] = {}
        await super().connect()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "subscribe":
            await self._subscribe(content.get("topics"))
            return
        await super().receive_json(content, **kwargs)

    async def _subscribe(self, requested: Any) -> None:
        names = [t for t in requested if isinstance(t, str)] if isinstance(requested, list) else []
        allowed, refused = await database_sync_to_async(self._allowed)(names[: self.max_topics])
        for topic in allowed - self.topics:
            await self.channel_layer.group_add(f"console.{topic}", self.channel_name)
        self.topics |= allowed
        await self.send_json(
            {"type": "subscribed", "topics": sorted(self.topics), "refused": sorted(refused)}
        )
        if "overview" in self.topics and self._overview_task is None:
            self._overview_task = asyncio.create_task(self._overview_loop())

    async def _overview_loop(self) -> None:
        """The overview's throttled broadcaster: once per ``overview_interval`` re-render the live region
        from the database for this staff member (their permissions decide what it holds) and push it
        when it changed; an unchanged check still goes out (small) so the page shows the data's age."""

        last = ""
        while True:
            started = time.monotonic()
            try:
                html = await database_sync_to_async(overview_fragment)(self.scope["user"])
            except Exception:  # a failed read must not kill the socket; the page shows the age
                logger.exception("overview refresh failed")
                html = None
            if html is not None:
                data: dict[str, Any] = {"at": time.time()}
                if html != last:
                    data["html"] = html
                    last = html
                await self.send_json({"type": "update", "topic": "overview", "data": data})
            await asyncio.sleep(max(0.05, self.overview_interval - (time.monotonic() - started)))

    def _allowed(self, names: list[str]) -> tuple[set[str], set[str]]:
        user = self.scope["user"]
        allowed, refused = set(), set()
        for name in names:
            perms = TOPIC_PERMISSIONS.get(name)
            if perms and any(user.has_perm(perm(p)) for p in perms):
                allowed.add(name)
            else:
                refused.add(name)
        return allowed, refused

    async def console_update(self, event: dict[str, Any]) -> None:
        topic, data = event.get("topic"), event.get("data")
        rule = TOPIC_THROTTLE.get(topic) if isinstance(topic, str) else None
        if rule is None or not isinstance(topic, str):
            await self.send_json({"type": "update", "topic": topic, "data": data})
            return
        interval, subject_field = rule
        subject = data.get(subject_field) if isinstance(data, dict) else None
        self._pending.setdefault(topic, {})[subject] = data
        if topic in self._flushes:
            return  # a send is already scheduled; it takes the newest
        wait = self._last_sent.get(topic, 0.0) + interval - time.monotonic()
        if wait <= 0:
            await self._flush(topic)
        else:
            self._flushes[topic] = asyncio.create_task(self._flush_after(topic, wait))

    async def _flush_after(self, topic: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._flushes.pop(topic, None)  # before sending: an update arriving meanwhile schedules the next
        await self._flush(topic)

    async def _flush(self, topic: str) -> None:
        pending = self._pending.pop(topic, {})
        self._last_sent[topic] = time.monotonic()
        for data in pending.values():
            await self.send_json({"type": "update", "topic": topic, "data": data})

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "_overview_task", None)
        if task is not None:
            task.cancel()
        for flush in getattr(self, "_flushes", {}).values():
            flush.cancel()
        for topic in getattr(self, "topics", set()):
            await self.channel_layer.group_discard(f"console.{topic}", self.channel_name)
        await super().disconnect(code)
