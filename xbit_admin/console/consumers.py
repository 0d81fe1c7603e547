"""Websocket consumers of the console shell."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from xbit_admin.console.access import scope_is_verified_staff


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
