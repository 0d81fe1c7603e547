"""The beat schedule every room adds its periodic tasks to (the Celery app in the frame serves it)."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}


def register_periodic(
    name: str, task: str, seconds: float, *, queue: str = "default", **options: Any
) -> None:
    """Add a beat entry. Idempotent per name, so re-imports in tests do not duplicate it."""
    BEAT_SCHEDULE[name] = {"task": task, "schedule": seconds, "options": {"queue": queue, **options}}
