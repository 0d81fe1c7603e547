"""Security events: what support reads about an account's sign-ins, locks, second factor and keys."""

from __future__ import annotations

from django.http import HttpRequest

from core.accounts.models import SecurityEvent, User


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def security_event_record(
    *, user: User | None, kind: str, request: HttpRequest | None = None, **details: object
) -> SecurityEvent:
    return SecurityEvent.objects.create(
        user=user,
        kind=kind,
        ip=client_ip(request),
        user_agent=(request.headers.get("User-Agent", "") if request else "")[:300],
        details={k: v for k, v in details.items() if v is not None},
    )
