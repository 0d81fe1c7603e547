"""Outbox payloads are written by orjson with Django's encoder for what orjson does not know: the same
JSON value as ``json.dumps(..., cls=DjangoJSONEncoder)``, byte formatting aside."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from core.events.services import payload_json


class Side(models.TextChoices):
    BUY = "BUY"


@dataclass
class Point:
    x: int


PAYLOADS = [
    {"fill_ids": [1, 2], "size": "0.001", "ok": True, "none": None, "nested": {"a": [{"b": "c"}]}},
    {"price": Decimal("123.4500"), "neg": Decimal("-0.000001"), "side": Side.BUY},
    {"at": datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC), "day": date(2026, 12, 7), "t": time(1, 2, 3)},
    {"id": uuid.UUID(int=7), "after": timedelta(seconds=90), "f": 1.25, "text": 'quote " \\ \n é ✓'},
    {"big": 2**70},  # beyond orjson's integers: json writes it
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_same_value_as_djangos_encoder(payload: dict[str, object]) -> None:
    assert json.loads(payload_json(payload)) == json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def test_what_djangos_encoder_refuses_is_refused() -> None:
    with pytest.raises(TypeError):
        json.dumps({"p": Point(1)}, cls=DjangoJSONEncoder)
    with pytest.raises(TypeError):
        payload_json({"p": Point(1)})
    with pytest.raises(TypeError):
        payload_json({"s": {1, 2}})
