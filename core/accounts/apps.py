from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "core.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # the OpenAPI auth extensions, the four-eyes actions, the restriction sweep's beat entry
        from core.accounts import (  # noqa: F401
            desk,
            desk_tasks,
            schema,
            staff_admin,
        )
