from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "wallets"
    verbose_name = "Wallets"

    def ready(self) -> None:
        # imported once the app registry is ready: these modules use the models at import time
        from core.accounts.management.commands.seed_demo import DEMO_SEEDERS
        from wallets import demo, tasks  # noqa: F401 - registers beat entries

        if demo.seed_wallets_demo not in DEMO_SEEDERS:
            DEMO_SEEDERS.append(demo.seed_wallets_demo)
