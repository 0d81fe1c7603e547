"""Trader money API: thin views (parse → one service/selector call → serialise). Every object is
owner-scoped; lists use the default cursor pagination."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from wallets import selectors, services
from wallets.api import serializers as out
from wallets.models import Chain
from xbit_admin.accounts.selectors import request_user


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

    class InputSerializer(serializers.Serializer):
        chain = serializers.CharField(max_length=16)

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.deposit_addresses_list(user_id=request_user(self.request).pk)

    @extend_schema(request=InputSerializer, responses={201: out.DepositAddressSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
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

    class InputSerializer(serializers.Serializer):
        chain = serializers.CharField(max_length=16)
        address = serializers.CharField(max_length=128)
        label = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")

    def get_permissions(self) -> Any:
        self.key_scope = "read" if self.request.method == "GET" else "withdraw"
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.withdrawal_addresses_list(user_id=request_user(self.request).pk)

    @extend_schema(request=InputSerializer, responses={201: out.WithdrawalAddressSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
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

    class InputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        totp_code = serializers.CharField(max_length=10)

    class OutputSerializer(serializers.Serializer):
        whitelist_only = serializers.BooleanField()

    @extend_schema(
        request=InputSerializer, responses=OutputSerializer, operation_id="withdrawal_whitelist_set"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
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

    class InputSerializer(serializers.Serializer):
        chain = serializers.CharField(max_length=16)
        asset = serializers.CharField(max_length=8)
        address = serializers.CharField(max_length=128)
        amount = serializers.CharField(max_length=40, help_text="decimal string, at most 6 decimals")
        totp_code = serializers.CharField(max_length=10)

    def get_permissions(self) -> Any:
        self.key_scope = "read" if self.request.method == "GET" else "withdraw"
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.withdrawals_list(user_id=request_user(self.request).pk)

    @extend_schema(
        request=InputSerializer,
        responses={201: out.WithdrawalSerializer},
        description="Creates a withdrawal waiting for the emailed confirmation link. Chains: "
        + ", ".join(Chain.values),
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
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
    def post(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = services.withdrawal_cancel(user=request_user(request), withdrawal_id=withdrawal_id)
        return Response(out.WithdrawalSerializer(withdrawal).data)


class WithdrawalConfirmApi(APIView):
    """The emailed link's target: the single-use token is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        reason_code = serializers.CharField()
        reason = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 401: OpenApiResponse(description="INVALID_TOKEN / TOKEN_EXPIRED")},
        operation_id="withdrawal_confirm",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_confirm(token=data.validated_data["token"])
        return Response(self.OutputSerializer(withdrawal).data)
