"""What both trader sockets share: JSON frames, error frames with stable codes, the per-socket message
rate limit and the documented close codes."""

from __future__ import annotations

import json
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from core.errors import ErrorCode

# close codes (documented in docs/stream.md)
CLOSE_AUTH = 4001  # authentication failed, expired or missing
CLOSE_TOO_MANY_CONNECTIONS = 4008
CLOSE_RATE = 4009  # too many messages
CLOSE_RECONNECT = 4011  # server going away / fell behind the retention window: reconnect and resume

MAX_FRAME_CHARS = 16_384


def now_ms() -> int:
    return int(time.time() * 1000)


class StreamSocket(AsyncWebsocketConsumer):
    """JSON text frames in and out; ``max_messages_per_second`` set by the subclass at connect."""

    max_messages_per_second = 20

    async def connect(self) -> None:
        self.closing = False
        self.rate_window = 0
        self.rate_count = 0
        await self.accept()

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=json.dumps(content, separators=(",", ":"), default=str))

    async def send_error(self, code: str, message: str, request_id: Any = None, **details: Any) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if request_id is not None:
            frame["id"] = request_id
        if details:
            frame["details"] = details
        await self.send_json(frame)

    async def fail(self, close_code: int, code: str, message: str) -> None:
        """An error frame, then the close (the client learns why before the socket goes)."""
        await self.send_error(code, message)
        self.closing = True
        await self.close(code=close_code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if not await self.rate_ok():
            return
        if text_data is None or len(text_data) > MAX_FRAME_CHARS:
            await self.send_error(
                ErrorCode.BAD_MESSAGE, f"Frames are JSON text of at most {MAX_FRAME_CHARS} characters."
            )
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_error(ErrorCode.BAD_MESSAGE, "The frame is not JSON.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            await self.send_error(ErrorCode.BAD_MESSAGE, 'A frame is an object with an "op".')
            return
        await self.receive_op(message["op"], message, message.get("id"))

    async def receive_op(self, op: str, message: dict[str, Any], request_id: Any) -> None:
        raise NotImplementedError

    async def rate_ok(self) -> bool:
        """Frames per second: over the limit the frame is refused (RATE_LIMITED, said once a second),
        over twice the limit the socket is closed (4009)."""
        window = int(time.monotonic())
        if window != self.rate_window:
            self.rate_window, self.rate_count = window, 0
        self.rate_count += 1
        limit = self.max_messages_per_second
        if self.rate_count <= limit:
            return True
        if self.rate_count > 2 * limit:
            await self.fail(
                CLOSE_RATE, ErrorCode.RATE_LIMITED, f"More than {2 * limit} messages in a second."
            )
        elif self.rate_count == limit + 1:
            await self.send_error(
                ErrorCode.RATE_LIMITED, f"At most {limit} messages a second; this one was dropped."
            )
        return False

    async def pong(self, request_id: Any) -> None:
        await self.send_json({"type": "pong", "id": request_id, "server_time": now_ms()})
