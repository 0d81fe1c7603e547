from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "xbit_admin.platform"
    label = "platform_state"
    verbose_name = "Platform state"
