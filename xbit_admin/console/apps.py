from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "xbit_admin.console"
    label = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        # imported here, once the app registry is loaded: these modules define or query models
        from core.accounts.management.commands.seed_demo import DEMO_SEEDERS
        from core.observability import configure_structlog
        from xbit_admin.console import (  # noqa: F401  (defaults; the venue sampler; four-eyes actions)
            explorers,
            four_eyes_risk,
            tasks,
        )
        from xbit_admin.console.demo import seed_demo_kyc

        configure_structlog()

        if seed_demo_kyc not in DEMO_SEEDERS:
            DEMO_SEEDERS.append(seed_demo_kyc)
