from django.apps import AppConfig


class SwitchStateConfig(AppConfig):
    """The switches' stored values and their cache (read by every room); what a switch does when it
    changes lives in the frame's ``xbit_admin.switches``."""

    name = "core.switches"
    label = "switches"
    verbose_name = "Control switches"
