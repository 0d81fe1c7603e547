from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "core.platform"
    label = "platform_state"
    verbose_name = "Platform state"
