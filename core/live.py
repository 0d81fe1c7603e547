"""Pushing live updates to open consoles (Channels groups), after commit only."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def broadcast_now(topic: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            f"console.{topic}", {"type": "console.update", "topic": topic, "data": _jsonable(payload)}
        )
    except Exception:  # a console push must never break the write that triggered it
        logger.exception("console broadcast on %s failed", topic)


def broadcast_on_commit(topic: str, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: broadcast_now(topic, payload))
