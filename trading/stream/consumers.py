"""The user data stream socket (``ws/v1/user``): authentication, subscriptions with snapshot or resume,
live frames without gaps or duplicates, heartbeats, limits. Protocol: docs/stream.md."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async

from core.errors import ErrorCode
from trading.stream import userlog
from trading.stream.auth import authenticate, frame_headers, has_credentials, headers_of
from trading.stream.base import CLOSE_AUTH, CLOSE_RECONNECT, CLOSE_TOO_MANY_CONNECTIONS, StreamSocket, now_ms
from trading.stream.config import StreamSettings, stream_settings
from trading.stream.mapping import CHANNELS, SNAPSHOT_CHANNELS
from trading.stream.snapshot import snapshot

logger = logging.getLogger(__name__)


def client_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class UserStreamConsumer(StreamSocket):
    """One trader's socket. ``last_seq`` is the highest sequence of the user's log this socket has
    passed (sent, or skipped as another channel's): a frame at or below it is a duplicate and dropped; a
    frame beyond ``last_seq + 1`` means one was missed on the way (pub/sub is at most once), and the
    gap is read from the log first. Frames are handled under ``lock``: the heartbeat ticker's gap repair
    and the socket's own handlers never interleave."""

    async def connect(self) -> None:
        self.user_id: int | None = None
        self.expires_at: float | None = None
        self.channels: set[str] = set()
        self.subscribed = False
        self.joined = False
        self.last_seq = 0
        self.epoch: str | None = None  # of the user logs when the socket joined its group
        self.opened = time.monotonic()
        self.next_beat = 0.0
        self.lock = asyncio.Lock()
        self.config: StreamSettings = await database_sync_to_async(stream_settings)()
        self.max_messages_per_second = self.config.max_messages_per_second
        await super().connect()
        TICKER.add(self)
        headers = headers_of(self.scope)
        if has_credentials(headers):
            await self.authenticate(headers)

    async def authenticate(self, headers: dict[str, str]) -> None:
        result = await database_sync_to_async(authenticate)(headers, client_ip(self.scope))
        if result.user_id is None:
            await self.fail(CLOSE_AUTH, result.code, result.message)
            return
        limit = self.config.max_connections_per_user
        if not await userlog.connection_claim(
            result.user_id, self.channel_name, limit=limit, stale_s=self.stale_seconds()
        ):
            await self.fail(
                CLOSE_TOO_MANY_CONNECTIONS,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"At most {limit} streams per user.",
            )
            return
        self.user_id = result.user_id
        self.expires_at = result.expires_at
        self.last_seq = await userlog.last_seq(result.user_id)
        self.next_beat = time.monotonic() + self.config.heartbeat_seconds
        await self.send_json(
            {"type": "authenticated", "user_id": self.user_id, "seq": self.last_seq, "server_time": now_ms()}
        )

    def stale_seconds(self) -> float:
        return 3 * self.config.heartbeat_seconds + 5

    async def receive_op(self, op: str, message: dict[str, Any], request_id: Any) -> None:
        if self.user_id is None:
            if op == "auth":
                await self.authenticate(frame_headers(message))
            else:
                await self.fail(
                    CLOSE_AUTH, ErrorCode.NOT_AUTHENTICATED, 'Authenticate first ({"op": "auth", …}).'
                )
            return
        if op == "subscribe":
            await self.subscribe(message, request_id)
        elif op == "unsubscribe":
            await self.unsubscribe(message, request_id)
        elif op == "ping":
            await self.pong(request_id)
        elif op == "auth":
            await self.send_error(ErrorCode.BAD_MESSAGE, "This socket is already authenticated.", request_id)
        else:
            await self.send_error(ErrorCode.BAD_MESSAGE, f"Unknown op {op!r}.", request_id)

    def requested_channels(self, message: dict[str, Any]) -> list[str] | None:
        names = message.get("channels")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            return None
        return list(dict.fromkeys(names))

    async def subscribe(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.user_id is not None
        names = self.requested_channels(message)
        resume = message.get("resume_from")
        if names is None or (
            resume is not None and (not isinstance(resume, int) or isinstance(resume, bool))
        ):
            await self.send_error(
                ErrorCode.BAD_SUBSCRIPTION,
                '"channels" is a non-empty list of channel names; "resume_from" a sequence number.',
                request_id,
            )
            return
        unknown = [n for n in names if n not in CHANNELS]
        if unknown:
            await self.send_error(
                ErrorCode.UNKNOWN_CHANNEL,
                f"Unknown channel(s): {', '.join(unknown)}.",
                request_id,
                channels=list(CHANNELS),
            )
            return
        if not self.joined:  # first: every frame published from now on reaches this socket
            self.epoch = await userlog.epoch()
            await self.channel_layer.group_add(userlog.group_name(self.user_id), self.channel_name)
            self.joined = True
        async with self.lock:
            if resume is not None:
                ok, current = await userlog.can_resume(self.user_id, resume)
                if resume < 0 or resume > current:
                    await self.send_error(
                        ErrorCode.BAD_SUBSCRIPTION,
                        f"resume_from must be between 0 and {current}.",
                        request_id,
                    )
                    return
                if not ok:
                    await self.send_error(
                        ErrorCode.RESUME_TOO_OLD,
                        "Events after this sequence are no longer retained: subscribe without resume_from.",
                        request_id,
                        seq=current,
                    )
                    return
                start = resume
            else:
                current = await userlog.last_seq(self.user_id)
                start = current
            new = [n for n in names if n not in self.channels]
            self.channels.update(names)
            await self.send_json(
                {"type": "subscribed", "id": request_id, "channels": sorted(self.channels), "seq": current}
            )
            if resume is None and new:
                wanted = [n for n in new if n in SNAPSHOT_CHANNELS]
                data = await database_sync_to_async(snapshot)(self.user_id, wanted) if wanted else {}
                for name in new:
                    await self.send_json(
                        {"type": "snapshot", "channel": name, "seq": current, "data": data.get(name, [])}
                    )
            if not self.subscribed:
                self.last_seq = start
                self.subscribed = True
            await self.replay(start, set(new))

    async def replay(self, after: int, new_channels: set[str]) -> None:
        """Retained frames after ``after``: those at or below ``last_seq`` only for channels just added
        (the socket passed them before it followed those channels), the rest as live ones."""
        assert self.user_id is not None
        for frame in await userlog.read_range(self.user_id, after):
            if frame.seq <= self.last_seq:
                if frame.channel in new_channels:
                    await self.send(text_data=frame.text)
                continue
            await self.pass_frame(frame.seq, frame.channel, frame.text)

    async def pass_frame(self, seq: int, channel: str, text: str) -> None:
        self.last_seq = seq
        if channel in self.channels:
            await self.send(text_data=text)

    async def unsubscribe(self, message: dict[str, Any], request_id: Any) -> None:
        names = self.requested_channels(message)
        if names is None:
            await self.send_error(
                ErrorCode.BAD_SUBSCRIPTION, '"channels" is a non-empty list of channel names.', request_id
            )
            return
        self.channels.difference_update(names)
        await self.send_json({"type": "unsubscribed", "id": request_id, "channels": sorted(self.channels)})

    async def stream_frames(self, event: dict[str, Any]) -> None:
        """Frames published by the fan-out: ``[[seq, channel, text], …]`` in sequence order."""
        if not self.subscribed or self.closing:
            return
        async with self.lock:
            for seq, channel, text in event["frames"]:
                if seq <= self.last_seq:
                    continue
                if seq > self.last_seq + 1 and not await self.catch_up(seq - 1):
                    return
                if seq > self.last_seq:
                    await self.pass_frame(seq, channel, text)

    async def catch_up(self, upto: int) -> bool:
        """Read the frames the socket missed (``last_seq < seq <= upto``) from the log; False (and the
        socket closed with 4011) when they are no longer retained."""
        assert self.user_id is not None
        frames = await userlog.read_range(self.user_id, self.last_seq, upto)
        if not frames or frames[0].seq != self.last_seq + 1:
            await self.fail(
                CLOSE_RECONNECT, ErrorCode.RESUME_TOO_OLD, "The socket fell behind the retention window."
            )
            return False
        for frame in frames:
            await self.pass_frame(frame.seq, frame.channel, frame.text)
        return True

    async def beat(self, user_seq: int, epoch: str | None) -> None:
        """The heartbeat, after repairing a gap the user's sequence reveals (a lost publish). A Redis
        restarted without its data took the log, the sequence and this socket's group: the socket would
        hear nothing more, so it is closed and the client subscribes again (a snapshot)."""
        if self.joined and epoch != self.epoch:
            await self.fail(
                CLOSE_RECONNECT,
                ErrorCode.RESUME_TOO_OLD,
                "The stream's log was lost (a server restart): reconnect and subscribe without resume_from.",
            )
            return
        if self.subscribed and user_seq > self.last_seq:
            async with self.lock:
                if user_seq > self.last_seq and not await self.catch_up(user_seq):
                    return
        await self.send_json({"type": "heartbeat", "seq": user_seq, "server_time": now_ms()})

    async def disconnect(self, code: int) -> None:
        TICKER.discard(self)
        if self.user_id is not None:
            if self.joined:
                await self.channel_layer.group_discard(userlog.group_name(self.user_id), self.channel_name)
            await userlog.connection_release(self.user_id, self.channel_name)


class Ticker:
    """One task per process for every user socket: heartbeats (with one MGET of the users' sequences),
    the connection registry's refresh, the auth timeout and the end of a JWT's life — no task or timer
    per socket."""

    def __init__(self) -> None:
        self.sockets: set[UserStreamConsumer] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, socket: UserStreamConsumer) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done() or self.task.get_loop() is not asyncio.get_running_loop():
            self.task = asyncio.get_running_loop().create_task(self.run())

    def discard(self, socket: UserStreamConsumer) -> None:
        self.sockets.discard(socket)

    async def run(self) -> None:
        while self.sockets:
            await asyncio.sleep(1.0)
            try:
                await self.tick()
            except Exception:  # a failed tick (Redis away) must not end the heartbeats
                logger.exception("user stream tick failed")
        self.task = None

    async def tick(self) -> None:
        now, wall = time.monotonic(), time.time()
        due: list[UserStreamConsumer] = []
        for socket in list(self.sockets):
            if socket.closing:
                continue
            if socket.user_id is None:
                if now - socket.opened > socket.config.auth_timeout_seconds:
                    await socket.fail(CLOSE_AUTH, ErrorCode.NOT_AUTHENTICATED, "No authentication in time.")
            elif socket.expires_at is not None and wall >= socket.expires_at:
                await socket.fail(
                    CLOSE_AUTH,
                    ErrorCode.TOKEN_EXPIRED,
                    "The access token expired: refresh it, reconnect and resume.",
                )
            elif now >= socket.next_beat:
                socket.next_beat = now + socket.config.heartbeat_seconds
                due.append(socket)
        if not due:
            return
        seqs, epoch = await userlog.last_seqs([s.user_id for s in due if s.user_id is not None])
        await userlog.connections_refresh(
            [(s.user_id, s.channel_name) for s in due if s.user_id is not None],
            stale_s=due[0].stale_seconds(),
        )
        await asyncio.gather(
            *(s.beat(seq, epoch) for s, seq in zip(due, seqs, strict=True)), return_exceptions=True
        )


TICKER = Ticker()
