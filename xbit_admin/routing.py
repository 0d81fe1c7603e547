"""Websocket URL routes. Apps append their consumers here as their pages land.

Two families: the console's (staff, session cookies: origin-checked and session-authenticated in
``xbit_admin.asgi``) and the trader streams under ``/ws/v1/`` (authenticated by their own JWT or API-key
signature, never by a cookie, so a program without an Origin header may open them and no session is
read for them)."""

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from trading.stream.consumers import UserStreamConsumer
from trading.stream.market import MarketStreamConsumer
from xbit_admin.console.consumers import ConsoleTopicsConsumer, HeartbeatConsumer

websocket_urlpatterns = [
    path("ws/console/heartbeat/", HeartbeatConsumer.as_asgi()),
    path("ws/console/topics/", ConsoleTopicsConsumer.as_asgi()),
]

TRADER_STREAM_PREFIX = "/ws/v1/"

trader_websocket_urlpatterns = [
    path("ws/v1/user", UserStreamConsumer.as_asgi()),
    path("ws/v1/market", MarketStreamConsumer.as_asgi()),
]


def websocket_application(console: Any) -> Any:
    """The websocket side of the ASGI app: the trader streams by path, everything else to ``console``
    (the console's stack: origin check, session authentication, its routes)."""
    traders = URLRouter(trader_websocket_urlpatterns)

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("path", "").startswith(TRADER_STREAM_PREFIX):
            return await traders(scope, receive, send)
        return await console(scope, receive, send)

    return application
