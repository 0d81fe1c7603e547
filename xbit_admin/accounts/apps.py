from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "xbit_admin.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from xbit_admin.accounts import schema  # noqa: F401  (registers the OpenAPI auth extensions)
