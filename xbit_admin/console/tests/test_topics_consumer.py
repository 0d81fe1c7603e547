"""ConsoleTopicsConsumer: a verified staff member follows the topics their permissions allow and gets
every ``console.update`` pushed to them; the heartbeat still works on the same socket."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.roles import Role
from core.live import broadcast_now
from xbit_admin.console.consumers import ConsoleTopicsConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(user: Any, *, verified: bool = True) -> dict[str, Any]:
    session = SessionStore()
    if verified:
        session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return {"user": user, "session": session}


async def _open(scope: dict[str, Any]) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(ConsoleTopicsConsumer.as_asgi(), "/ws/console/topics/")
    communicator.scope.update(scope)
    connected, _ = await communicator.connect()
    return communicator, connected


async def _next(communicator: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    for _ in range(10):
        message = await communicator.receive_json_from(timeout=3)
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind}")


def test_a_risk_manager_follows_routing_and_gets_mode_changes(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.RISK_MANAGER))

    async def run() -> None:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["routing", "markets", "nonsense"]})
        subscribed = await _next(communicator, "subscribed")
        assert subscribed["topics"] == ["markets", "routing"] and subscribed["refused"] == ["nonsense"]
        await communicator.send_json_to({"type": "ping", "t": 1.5})
        assert (await _next(communicator, "pong"))["echo"] == 1.5
        from asgiref.sync import sync_to_async

        await sync_to_async(broadcast_now)("routing", {"event": "mode", "asset": "BTC", "to_mode": "HL_MODE"})
        update = await _next(communicator, "update")
        assert update["topic"] == "routing" and update["data"]["to_mode"] == "HL_MODE"
        await communicator.disconnect()

    async_to_sync(run)()


def test_support_may_not_follow_routing(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.SUPPORT))

    async def run() -> dict[str, Any]:
        communicator, connected = await _open(scope)
        assert connected
        await communicator.send_json_to({"type": "subscribe", "topics": ["routing"]})
        answer = await _next(communicator, "subscribed")
        await communicator.disconnect()
        return answer

    answer = async_to_sync(run)()
    assert answer["topics"] == [] and answer["refused"] == ["routing"]


def test_an_unverified_session_is_refused(make_staff: Any) -> None:
    scope = _scope(make_staff(Role.SUPER_ADMIN), verified=False)

    async def run() -> bool:
        return (await _open(scope))[1]

    assert async_to_sync(run)() is False
