"""Reads for accounts."""

from __future__ import annotations

from typing import Any

from xbit_admin.accounts.models import User


def request_user(request: Any) -> User:
    """The authenticated trader of a DRF request (views run behind IsAuthenticated)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionError("an authenticated user is required")
    return user
