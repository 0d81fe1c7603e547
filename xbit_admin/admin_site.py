"""Django's admin behind the same second factor; read-only for everyone but Super Admin (spec 07)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_otp.admin import OTPAdminSite

from xbit_admin.accounts.roles import Role


def is_super_admin(user: Any) -> bool:
    return bool(user.is_active and (user.is_superuser or user.groups.filter(name=Role.SUPER_ADMIN).exists()))


class XbitAdminSite(OTPAdminSite):
    site_header = "XBIT raw records"
    site_title = "XBIT admin"
    index_title = "Raw records (read-only unless Super Admin)"

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(super().has_permission(request))


class ReadOnlyUnlessSuperAdmin:
    """Mixin for ModelAdmin: every verified staff member may look, only a Super Admin may change."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_super_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_super_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_super_admin(request.user)


class AppendOnlyAdmin(ReadOnlyUnlessSuperAdmin):
    """Ledger-like tables: nobody edits or deletes through the admin (the database refuses anyway)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
