from django.contrib import admin

from core.admin_site import ReadOnlyUnlessSuperAdmin
from core.alerts.models import Alert, Delivery


@admin.register(Alert)
class AlertAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    view_permission = "view_console"  # the console's Alerts page is open to every role
    list_display = ("id", "severity", "rule", "subject", "state", "count", "last_seen")
    list_filter = ("severity", "state")


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    view_permission = "view_console"
    list_display = (
        "id",
        "alert",
        "channel",
        "action",
        "escalation",
        "status",
        "attempts",
        "response_code",
        "updated_at",
    )
    list_filter = ("channel", "action", "status")
