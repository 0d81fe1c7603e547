"""A small websocket client for the stream tests: JSON frames, waits with deadlines, the close code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from core.accounts import hmac_auth


def open_socket(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(url, additional_headers=headers or {}, open_timeout=10, max_size=2**22)


def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def recv_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Frames up to and including the first for which ``done`` is true."""
    deadline = time.monotonic() + timeout
    out: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching frame in {timeout} s; got {out[-5:]}")
        frame = recv(ws, timeout=left)
        out.append(frame)
        if done(frame):
            return out


def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes; the close code it sent."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        return None
    return None


def frames_until_closed(
    ws: ClientConnection, timeout: float = 5.0
) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the server sent before it closed, and the close code it sent (None: still open)."""
    deadline = time.monotonic() + timeout
    frames: list[dict[str, Any]] = []
    try:
        while time.monotonic() < deadline:
            frames.append(recv(ws, timeout=max(0.01, deadline - time.monotonic())))
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        pass
    return frames, None


def hmac_headers(key_id: str, secret: str, *, timestamp: str | None = None) -> dict[str, str]:
    ts = timestamp or str(int(time.time() * 1000))
    signature = hmac_auth.sign(secret, timestamp=ts, method="GET", path="/ws/v1/user")
    return {
        hmac_auth.HEADER_KEY: key_id,
        hmac_auth.HEADER_TIMESTAMP: ts,
        hmac_auth.HEADER_SIGNATURE: signature,
    }
