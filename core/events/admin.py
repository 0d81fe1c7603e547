from django.contrib import admin

from core.admin_site import AppendOnlyAdmin
from core.events.models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(AppendOnlyAdmin, admin.ModelAdmin):
    view_permission = None  # raw domain events carry every user's payloads: Super Admin only
    list_display = ("id", "topic", "aggregate", "created_at", "published_at")
    list_filter = ("topic",)
