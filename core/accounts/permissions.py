"""DRF permission classes: API-key scopes for traders, role permissions (with verified OTP) for staff."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from core.accounts.models import ApiKey
from core.accounts.roles import perm
from core.errors import ErrorCode


class KeyScope(permissions.BasePermission):
    """An API key may only do what its permissions say; JWT sessions may do everything a trader can.

    Views declare ``key_scope = "read" | "trade" | "withdraw"``; unsafe methods default to ``trade``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        scope = getattr(view, "key_scope", None) or (
            "read" if request.method in permissions.SAFE_METHODS else "trade"
        )
        if scope not in request.auth.permissions:
            exc = exceptions.PermissionDenied(f"This API key lacks the '{scope}' permission.")
            exc.xbit_code = ErrorCode.API_KEY_PERMISSION
            raise exc
        return True


class StaffPermission(permissions.BasePermission):
    """Ops API: a staff session with a verified second factor and the view's ``staff_permission``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        verified = getattr(request._request.user, "is_verified", lambda: False)()
        if not verified:
            exc = exceptions.PermissionDenied("A verified second factor is required.")
            exc.xbit_code = ErrorCode.OTP_REQUIRED
            raise exc
        needed = getattr(view, "staff_permission", None)
        if needed is None:
            return False  # a staff view that forgot to declare its permission is closed, not open
        return bool(user.has_perm(perm(needed)))


class InteractiveSession(permissions.BasePermission):
    """Account security is managed from a signed-in (JWT) session only: an API key, whatever its
    permissions, can neither read nor change it."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            exc = exceptions.PermissionDenied("Account security is managed from a signed-in session.")
            exc.xbit_code = ErrorCode.API_KEY_PERMISSION
            raise exc
        return bool(request.user and request.user.is_authenticated)
