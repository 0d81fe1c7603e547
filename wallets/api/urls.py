from django.urls import path

from wallets.api import views

urlpatterns = [
    path("wallet", views.WalletApi.as_view(), name="wallet"),
    path("balance-logs", views.BalanceLogListApi.as_view(), name="balance-logs"),
    path("deposit-addresses", views.DepositAddressListApi.as_view(), name="deposit-addresses"),
    path("deposits", views.DepositListApi.as_view(), name="deposits"),
    path("withdrawal-addresses", views.WithdrawalAddressListApi.as_view(), name="withdrawal-addresses"),
    path(
        "withdrawal-addresses/whitelist",
        views.WithdrawalWhitelistApi.as_view(),
        name="withdrawal-address-whitelist",
    ),
    path(
        "withdrawal-addresses/<int:address_id>",
        views.WithdrawalAddressDeleteApi.as_view(),
        name="withdrawal-address-delete",
    ),
    path("withdrawals", views.WithdrawalListApi.as_view(), name="withdrawals"),
    path("withdrawals/confirm", views.WithdrawalConfirmApi.as_view(), name="withdrawal-confirm"),
    path("withdrawals/<int:withdrawal_id>", views.WithdrawalDetailApi.as_view(), name="withdrawal-detail"),
    path(
        "withdrawals/<int:withdrawal_id>/cancel",
        views.WithdrawalCancelApi.as_view(),
        name="withdrawal-cancel",
    ),
]
