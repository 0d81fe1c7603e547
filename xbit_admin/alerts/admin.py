from django.contrib import admin

from xbit_admin.admin_site import ReadOnlyUnlessSuperAdmin
from xbit_admin.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(ReadOnlyUnlessSuperAdmin, admin.ModelAdmin):
    list_display = ("id", "severity", "rule", "subject", "state", "count", "last_seen")
    list_filter = ("severity", "state")
