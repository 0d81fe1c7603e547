from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "xbit_admin.accounts"
    label = "accounts"
    verbose_name = "Accounts"
