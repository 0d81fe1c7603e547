from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "core.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # the OpenAPI auth extensions, the four-eyes actions, the restriction sweep's beat entry, and the
        # receivers that replace user rows' version tokens on every change, in every process
        from core.accounts import (  # noqa: F401
            desk,
            desk_tasks,
            schema,
            staff_admin,
            user_cache,
        )
