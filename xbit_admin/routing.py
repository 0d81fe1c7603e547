"""Websocket URL routes. Apps append their consumers here as their pages land."""

from django.urls import path

from xbit_admin.console.consumers import ConsoleTopicsConsumer, HeartbeatConsumer

websocket_urlpatterns = [
    path("ws/console/heartbeat/", HeartbeatConsumer.as_asgi()),
    path("ws/console/topics/", ConsoleTopicsConsumer.as_asgi()),
]
