"""The staff permission check of the wallets services."""

from __future__ import annotations

from typing import Any

from core.accounts.roles import perm
from core.errors import ApplicationError, ErrorCode


def require_perm(user: Any, codename: str) -> None:
    """Raise ``PERMISSION_DENIED`` unless ``user`` is staff holding the ``codename`` permission."""
    if user is None or not getattr(user, "is_staff", False) or not user.has_perm(perm(codename)):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, f"This needs the '{codename}' permission.")
