from django.contrib import admin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.models import ApiKey, SecurityEvent, User
from core.admin_site import AppendOnlyAdmin, ReadOnlyUnlessSuperAdmin, super_admin_only


@admin.register(User)
class UserAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    view_permission = "view_user_data"
    list_display = ("id", "email", "wallet_address", "kyc_status", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "wallet_address")
    list_filter = ("is_staff", "kyc_status", "trading_restricted", "withdrawals_restricted")
    exclude = ("password",)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    view_permission = None  # key ids and allow-lists: a credential's metadata, Super Admin only
    list_display = ("key_id", "user", "label", "permissions", "created_at", "revoked_at")
    exclude = ("secret_encrypted",)


@admin.register(SecurityEvent)
class SecurityEventAdmin(AppendOnlyAdmin, admin.ModelAdmin):
    view_permission = "view_user_data"  # spec 08: security events are visible to support
    list_display = ("created_at", "user", "kind", "ip")
    list_filter = ("kind",)


# Roles and second factors: staff management, Super Admin only (their own admins follow Django's model
# permissions, which no role holds).
for _model in (Group, TOTPDevice, StaticDevice):
    super_admin_only(_model)
