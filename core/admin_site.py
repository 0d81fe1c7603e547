"""Django's admin behind the same second factor; read-only for everyone but Super Admin (spec 07),
and each model readable only by the roles whose console permission covers it (Support read
the audit log and API key ids here, Risk every trader's email). Every ``ModelAdmin`` registered with
the site names the console permission that reveals it (``view_permission``; None = Super Admin only);
``xbit_admin/tests/test_admin_roles.py`` checks every registered model × every role."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django_otp.admin import OTPAdminSite

from core.accounts.roles import Role, perm


def is_super_admin(user: Any) -> bool:
    return bool(user.is_active and (user.is_superuser or user.groups.filter(name=Role.SUPER_ADMIN).exists()))


def _may_read(request: HttpRequest, codename: str | None) -> bool:
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    if is_super_admin(user):
        return True
    return codename is not None and bool(user.has_perm(perm(codename)))


class XbitAdminSite(OTPAdminSite):
    site_header = "XBIT raw records"
    site_title = "XBIT admin"
    index_title = "Raw records (read-only unless Super Admin)"

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(super().has_permission(request))


class ReadOnlyUnlessSuperAdmin:
    """Mixin for ModelAdmin: staff whose role holds ``view_permission`` may look (a Super Admin always),
    only a Super Admin may change. ``view_permission = None`` keeps the model to Super Admins."""

    view_permission: str | None = None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _may_read(request, self.view_permission)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _may_read(request, self.view_permission)

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


def super_admin_only(model: type[Any]) -> None:
    """Re-register a third-party admin (groups, OTP devices) so that only a Super Admin sees it: their
    own admins follow Django's model permissions, which no role holds."""
    model_admin = type(admin.site._registry[model])
    admin.site.unregister(model)
    admin.site.register(
        model, type(model_admin.__name__, (ReadOnlyUnlessSuperAdmin, model_admin), {"view_permission": None})
    )
