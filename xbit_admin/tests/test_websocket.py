"""The console's live channel: a verified staff session connects and gets beats; others are refused."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.roles import Role
from xbit_admin.console.consumers import HeartbeatConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(user: Any, *, verified: bool) -> dict[str, Any]:
    session = SessionStore()
    if verified:
        session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return {"user": user, "session": session}


async def _connect(scope: dict[str, Any]) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(HeartbeatConsumer.as_asgi(), "/ws/console/heartbeat/")
    communicator.scope.update(scope)
    connected, _ = await communicator.connect()
    return communicator, connected


def test_a_verified_staff_member_gets_heartbeats_and_pongs(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.SUPPORT), verified=True)
    async_to_sync(_heartbeat_round_trip)(scope)


async def _heartbeat_round_trip(scope: dict[str, Any]) -> None:
    communicator, connected = await _connect(scope)
    assert connected
    beat = await communicator.receive_json_from(timeout=3)
    assert beat["type"] == "heartbeat"
    await communicator.send_json_to({"type": "ping", "t": 12.5})
    for _ in range(3):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == "pong":
            assert message["echo"] == 12.5
            break
    else:
        pytest.fail("no pong")
    await communicator.disconnect()


def test_an_unverified_session_is_refused(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.SUPER_ADMIN), verified=False)

    async def attempt() -> bool:
        _communicator, connected = await _connect(scope)
        return connected

    assert async_to_sync(attempt)() is False
