"""Reading and writing the platform's readiness (cached per process, invalidated on write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.live_config import LiveConfig, invalidate
from core.platform.models import PlatformState


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def _load() -> Readiness:
    row = PlatformState.objects.filter(key="orders").values("ready", "reason").first()
    return Readiness(True, "") if row is None else Readiness(row["ready"], row["reason"])


READINESS: LiveConfig[Readiness] = LiveConfig("platform_readiness", _load)


def platform_ready() -> Readiness:
    return READINESS.get()


@transaction.atomic
def platform_ready_set(*, ready: bool, reason: str = "", details: dict[str, Any] | None = None) -> None:
    PlatformState.objects.update_or_create(
        key="orders",
        defaults={
            "ready": ready,
            "reason": reason[:300],
            "details": details or {},
            "changed_at": timezone.now(),
        },
    )
    invalidate(READINESS.name)
