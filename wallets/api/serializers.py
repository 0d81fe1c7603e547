"""Output serializers of the trader API (read-only shapes; input serializers live with their views)."""

from __future__ import annotations

from rest_framework import serializers

from wallets.models import BalanceLog, Deposit, DepositAddress, LedgerAccount, Withdrawal, WithdrawalAddress


class WalletSerializer(serializers.Serializer):
    asset = serializers.CharField()
    total_balance = serializers.DecimalField(max_digits=28, decimal_places=6)
    available_balance = serializers.DecimalField(max_digits=28, decimal_places=6)
    frozen_margin = serializers.DecimalField(max_digits=28, decimal_places=6)
    cross_margin_used = serializers.DecimalField(max_digits=28, decimal_places=6)
    pending_withdrawal = serializers.DecimalField(max_digits=28, decimal_places=6)


class AccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = LedgerAccount
        fields = ["kind", "sub", "asset", "balance"]


class WalletWithAccountsSerializer(WalletSerializer):
    accounts = AccountSerializer(many=True)


class BalanceLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = BalanceLog
        fields = [
            "id",
            "type",
            "account_kind",
            "asset",
            "amount",
            "before",
            "after",
            "ref_type",
            "ref_id",
            "created_at",
        ]


class DepositAddressSerializer(serializers.ModelSerializer):
    class Meta:
        model = DepositAddress
        fields = ["id", "chain", "address", "created_at"]


class DepositSerializer(serializers.ModelSerializer):
    class Meta:
        model = Deposit
        fields = [
            "id",
            "chain",
            "asset",
            "amount",
            "tx_hash",
            "log_index",
            "address",
            "status",
            "confirmations",
            "required_confirmations",
            "created_at",
            "credited_at",
        ]


class WithdrawalAddressSerializer(serializers.ModelSerializer):
    class Meta:
        model = WithdrawalAddress
        fields = ["id", "chain", "address", "label", "created_at", "usable_at"]


class WithdrawalSerializer(serializers.ModelSerializer):
    net_amount = serializers.DecimalField(max_digits=28, decimal_places=6, read_only=True)

    class Meta:
        model = Withdrawal
        fields = [
            "id",
            "chain",
            "asset",
            "address",
            "amount",
            "fee",
            "net_amount",
            "status",
            "tier",
            "reason_code",
            "reason",
            "tx_hash",
            "confirmations",
            "created_at",
            "confirmed_at",
            "broadcast_at",
            "completed_at",
        ]
