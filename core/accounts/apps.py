from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "core.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from core.accounts import (  # noqa: F401  (register their four-eyes actions)
            desk,
            schema,
            staff_admin,
        )
