from django.contrib import admin

from xbit_admin.accounts.models import ApiKey, SecurityEvent, User
from xbit_admin.admin_site import AppendOnlyAdmin, ReadOnlyUnlessSuperAdmin


@admin.register(User)
class UserAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    list_display = ("id", "email", "wallet_address", "kyc_status", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "wallet_address")
    list_filter = ("is_staff", "kyc_status", "trading_restricted", "withdrawals_restricted")
    exclude = ("password",)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    list_display = ("key_id", "user", "label", "permissions", "created_at", "revoked_at")
    exclude = ("secret_encrypted",)


@admin.register(SecurityEvent)
class SecurityEventAdmin(AppendOnlyAdmin, admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "ip")
    list_filter = ("kind",)
