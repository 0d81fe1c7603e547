"""Guards for console views and websocket consumers: staff, active, second factor verified, and the
page's permission. A staff member without the permission gets 403 (not a redirect) so the permission
matrix is testable per endpoint."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from core.accounts.roles import perm


def staff_required(*any_of: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated or not user.is_staff or not user.is_active:
                return redirect(f"{reverse('console:login')}?next={request.get_full_path()}")
            if not user.is_verified():
                return redirect(reverse("console:otp"))
            if any_of and not any(user.has_perm(perm(p)) for p in any_of):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.staff_permissions = any_of
        return wrapped

    return decorator


def scope_is_verified_staff(scope: dict[str, Any]) -> bool:
    """Channels has no OTPMiddleware: re-check the session's verified device ourselves."""

    user = scope.get("user")
    session = scope.get("session")
    if user is None or not user.is_authenticated or not user.is_staff or session is None:
        return False
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return False
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.user_id == user.pk and device.confirmed
