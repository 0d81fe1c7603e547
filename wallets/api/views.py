"""Trader money API: thin views (parse → one service/selector call → serialise). Every object is
owner-scoped; lists use the default cursor pagination."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts.selectors import request_user
from core.api_input import DecimalStringField, InputSerializer
from core.api_schema import api_errors
from core.errors import ErrorCode
from core.money import MONEY_INPUT
from wallets import selectors, services
from wallets.api import serializers as out
from wallets.models import Chain


@extend_schema_field(serializers.ChoiceField(choices=Chain.choices))  # documented as the ChainEnum
class ChainField(serializers.CharField):
    """A chain name; the service checks it (case-insensitively) and answers UNKNOWN_CHAIN for others."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=16, **kwargs)


class WalletApi(APIView):
    key_scope = "read"

    @extend_schema(responses=out.WalletWithAccountsSerializer, operation_id="wallet_get")
    def get(self, request: Request) -> Response:
        view = selectors.wallet_get(user_id=request_user(request).pk)
        data = {**view.__dict__, "accounts": selectors.user_accounts(user_id=request_user(request).pk)}
        return Response(out.WalletWithAccountsSerializer(data).data)


class BalanceLogListApi(generics.ListAPIView):
    key_scope = "read"
    serializer_class = out.BalanceLogSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.balance_logs_list(user_id=request_user(self.request).pk)


class DepositAddressListApi(generics.ListAPIView):
    key_scope = "read"
    serializer_class = out.DepositAddressSerializer

    class DepositAddressInputSerializer(InputSerializer):
        chain = ChainField()

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.deposit_addresses_list(user_id=request_user(self.request).pk)

    @extend_schema(request=DepositAddressInputSerializer, responses={201: out.DepositAddressSerializer})
    @api_errors(ErrorCode.UNKNOWN_CHAIN, ErrorCode.CHAIN_DISABLED)
    def post(self, request: Request) -> Response:
        data = self.DepositAddressInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        address = services.deposit_address_get_or_create(
            user=request_user(request), chain=data.validated_data["chain"]
        )
        return Response(out.DepositAddressSerializer(address).data, status=status.HTTP_201_CREATED)


class DepositListApi(generics.ListAPIView):
    key_scope = "read"
    serializer_class = out.DepositSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.deposits_list(user_id=request_user(self.request).pk)


class WithdrawalAddressListApi(generics.ListAPIView):
    serializer_class = out.WithdrawalAddressSerializer
    key_scope = "read"

    class WithdrawalAddressInputSerializer(InputSerializer):
        chain = ChainField()
        address = serializers.CharField(max_length=128)
        label = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")

    def get_permissions(self) -> Any:
        self.key_scope = "read" if self.request.method == "GET" else "withdraw"
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.withdrawal_addresses_list(user_id=request_user(self.request).pk)

    @extend_schema(request=WithdrawalAddressInputSerializer, responses={201: out.WithdrawalAddressSerializer})
    @api_errors(ErrorCode.UNKNOWN_CHAIN, ErrorCode.INVALID_ADDRESS)
    def post(self, request: Request) -> Response:
        data = self.WithdrawalAddressInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.withdrawal_address_add(
            user=request_user(request), request=request._request, **data.validated_data
        )
        return Response(out.WithdrawalAddressSerializer(entry).data, status=status.HTTP_201_CREATED)


class WithdrawalAddressDeleteApi(APIView):
    key_scope = "withdraw"

    @extend_schema(responses={204: None}, operation_id="withdrawal_address_delete")
    def delete(self, request: Request, address_id: int) -> Response:
        services.withdrawal_address_remove(
            user=request_user(request), address_id=address_id, request=request._request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WithdrawalWhitelistApi(APIView):
    key_scope = "withdraw"

    class WhitelistInputSerializer(InputSerializer):
        enabled = serializers.BooleanField()
        totp_code = serializers.CharField(max_length=10)

    class WhitelistOutputSerializer(serializers.Serializer):
        whitelist_only = serializers.BooleanField()

    @extend_schema(
        request=WhitelistInputSerializer,
        responses=WhitelistOutputSerializer,
        operation_id="withdrawal_whitelist_set",
    )
    @api_errors(ErrorCode.OTP_REQUIRED, ErrorCode.INVALID_OTP)
    def post(self, request: Request) -> Response:
        data = self.WhitelistInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.withdrawal_whitelist_set(
            user=request_user(request),
            enabled=data.validated_data["enabled"],
            totp_code=data.validated_data["totp_code"],
            request=request._request,
        )
        return Response({"whitelist_only": row.whitelist_only})


class WithdrawalListApi(generics.ListAPIView):
    serializer_class = out.WithdrawalSerializer

    class WithdrawalInputSerializer(InputSerializer):
        chain = ChainField()
        asset = serializers.CharField(max_length=8)
        address = serializers.CharField(max_length=128)
        amount = DecimalStringField(
            shape=MONEY_INPUT, code=ErrorCode.INVALID_AMOUNT, help_text="decimal string, at most 6 decimals"
        )
        totp_code = serializers.CharField(max_length=10)

    def get_permissions(self) -> Any:
        self.key_scope = "read" if self.request.method == "GET" else "withdraw"
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.withdrawals_list(user_id=request_user(self.request).pk)

    @extend_schema(
        request=WithdrawalInputSerializer,
        responses={201: out.WithdrawalSerializer},
        description="Creates a withdrawal waiting for the emailed confirmation link. Chains: "
        + ", ".join(Chain.values),
    )
    @api_errors(
        ErrorCode.UNKNOWN_CHAIN,
        ErrorCode.UNKNOWN_ASSET,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.INVALID_ADDRESS,
        ErrorCode.WITHDRAWALS_DISABLED,
        ErrorCode.INVALID_OTP,
        ErrorCode.ADDRESS_NOT_WHITELISTED,
        ErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.USER_RESTRICTED,
        ErrorCode.EMAIL_NOT_VERIFIED,
        ErrorCode.OTP_REQUIRED,
        ErrorCode.KYC_LIMIT_EXCEEDED,
        ErrorCode.DUPLICATE_WITHDRAWAL,
    )
    def post(self, request: Request) -> Response:
        data = self.WithdrawalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_request(
            user=request_user(request), request=request._request, **data.validated_data
        )
        return Response(out.WithdrawalSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class WithdrawalDetailApi(APIView):
    key_scope = "read"

    @extend_schema(responses=out.WithdrawalSerializer, operation_id="withdrawal_get")
    def get(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = selectors.withdrawal_get(user_id=request_user(request).pk, withdrawal_id=withdrawal_id)
        return Response(out.WithdrawalSerializer(withdrawal).data)


class WithdrawalCancelApi(APIView):
    key_scope = "withdraw"

    @extend_schema(request=None, responses=out.WithdrawalSerializer, operation_id="withdrawal_cancel")
    @api_errors(ErrorCode.INVALID_STATE)
    def post(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = services.withdrawal_cancel(user=request_user(request), withdrawal_id=withdrawal_id)
        return Response(out.WithdrawalSerializer(withdrawal).data)


class WithdrawalConfirmApi(APIView):
    """The emailed link's target: the single-use token is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class WithdrawalConfirmInputSerializer(InputSerializer):
        token = serializers.CharField(max_length=200)

    class WithdrawalConfirmOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        reason_code = serializers.CharField()
        reason = serializers.CharField()

    @extend_schema(
        request=WithdrawalConfirmInputSerializer,
        responses=WithdrawalConfirmOutputSerializer,
        operation_id="withdrawal_confirm",
    )
    @api_errors(ErrorCode.INVALID_TOKEN, ErrorCode.TOKEN_EXPIRED, ErrorCode.INSUFFICIENT_BALANCE)
    def post(self, request: Request) -> Response:
        data = self.WithdrawalConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_confirm(token=data.validated_data["token"])
        return Response(self.WithdrawalConfirmOutputSerializer(withdrawal).data)
