from django.contrib import admin

from core.admin_site import AppendOnlyAdmin
from core.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(AppendOnlyAdmin, admin.ModelAdmin):
    view_permission = "view_audit_log"
    list_display = ("id", "created_at", "actor_label", "action", "object_type", "object_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "object_id", "action")
