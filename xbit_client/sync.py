"""``Client``: the trader REST API over ``httpx.Client`` (blocking). Same methods as ``AsyncClient``."""

from __future__ import annotations

import time
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from xbit_client import endpoints as ep
from xbit_client.core import Call, Core
from xbit_client.endpoints import Number
from xbit_client.errors import XbitApiError, XbitTransportError
from xbit_client.models import (
    Account,
    AlgoOrder,
    ApiKeyInfo,
    BalanceLog,
    BulkResult,
    CancelAllResult,
    Deposit,
    DepositAddress,
    Fill,
    FundingPayment,
    LeverageSetting,
    Market,
    Me,
    Order,
    Page,
    Position,
    ScheduledCancel,
    TokenPair,
    Tpsl,
    Wallet,
    Withdrawal,
    WithdrawalAddress,
)

T = TypeVar("T")


class Client:
    """Blocking client. Authenticate with an API key (``api_key`` + ``api_secret``: every request
    HMAC-signed) or as a user (``email`` + ``password``, or tokens: JWT refreshed before it expires and
    once on a 401 INVALID_TOKEN / TOKEN_EXPIRED). Refusals raise ``XbitApiError``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int | None = None,
        email: str | None = None,
        password: str | None = None,
        otp_code: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        http: httpx.Client | None = None,
    ) -> None:
        self.core = Core(
            base_url,
            api_key=api_key,
            api_secret=api_secret,
            recv_window_ms=recv_window_ms,
            email=email,
            password=password,
            otp_code=otp_code,
            access_token=access_token,
            refresh_token=refresh_token,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.http = http or httpx.Client(timeout=timeout, headers={"User-Agent": "xbit-client"})

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ---- transport -----------------------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            prepared = self.core.prepare(call)
            try:
                response = self.http.request(
                    prepared.method, prepared.url, headers=prepared.headers, content=prepared.content
                )
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                delay = self.core.retry_delay(call, attempt, None, sent=sent)
                if delay is None:
                    raise XbitTransportError(
                        f"{call.method} {call.path}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                try:
                    return self.core.answer(call, response.status_code, response.content)
                except XbitApiError as error:
                    delay = self.core.retry_delay(call, attempt, error, sent=True)
                    if delay is None:
                        raise
            attempt += 1
            time.sleep(delay)

    def _run(self, call: Call[T]) -> T:
        tokens = self.core.tokens
        if not call.signed or tokens is None:
            return self._send(call)
        self._ensure_token()
        try:
            return self._send(call)
        except XbitApiError as error:
            if not self.core.token_retry(error, already_refreshed=False):
                raise
        self._renew(force=True)
        return self._send(call)

    def _ensure_token(self) -> None:
        tokens = self.core.tokens
        if tokens is not None and not tokens.fresh():
            self._renew(force=False)

    def _renew(self, *, force: bool) -> None:
        tokens = self.core.tokens
        assert tokens is not None
        with tokens.lock:
            if not force and tokens.fresh():
                return  # another thread renewed it meanwhile
            pair: TokenPair | None = None
            if tokens.refresh:
                try:
                    pair = self._send(tokens.refresh_call())
                except XbitApiError as error:
                    if error.status != 401 or not tokens.can_login:
                        raise
            if pair is None:
                if not tokens.can_login:
                    raise XbitApiError(401, "INVALID_TOKEN", "No valid token and no credentials to sign in.")
                pair = self._send(tokens.login_call())
            tokens.take(pair)

    # ---- authentication ------------------------------------------------------------------------------

    def login(self, email: str, password: str, otp_code: str | None = None) -> TokenPair:
        """Sign in with email and password; the client then uses (and refreshes) the tokens."""
        self.core.use_tokens(TokenPair("", "", ""), email=email, password=password)
        assert self.core.tokens is not None
        self.core.tokens.otp_code = otp_code
        pair = self._send(self.core.tokens.login_call())
        self.core.tokens.take(pair)
        return pair

    def refresh(self) -> TokenPair:
        """Rotate the token pair now (normally automatic)."""
        self._renew(force=True)
        tokens = self.core.tokens
        assert tokens is not None
        return TokenPair(tokens.access, tokens.refresh, "Bearer")

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """Any other endpoint under ``/api/v1`` (signed like the others); the JSON answer as is."""
        retryable = method.upper() in ("GET", "HEAD")
        return self._run(
            Call(method.upper(), path, lambda data: data, params=params, body=body, retryable=retryable)
        )

    # ---- account and keys --------------------------------------------------------------------------

    def me(self) -> Me:
        return self._run(ep.me())

    def api_keys(self) -> list[ApiKeyInfo]:
        return self._run(ep.api_keys())

    def create_api_key(
        self,
        permissions: list[str],
        label: str = "",
        ip_allowlist: list[str] | None = None,
        otp_code: str | None = None,
    ) -> ApiKeyInfo:
        """Only from a signed-in (JWT) session: a key cannot mint keys. ``secret`` is shown once."""
        return self._run(ep.create_api_key(permissions, label, ip_allowlist, otp_code))

    def revoke_api_key(self, key_id: str) -> ApiKeyInfo:
        return self._run(ep.revoke_api_key(key_id))

    # ---- markets -----------------------------------------------------------------------------------

    def markets(self, include_delisted: bool = False) -> list[Market]:
        return self._run(ep.markets(include_delisted))

    def market(self, symbol: str) -> Market:
        return self._run(ep.market(symbol))

    # ---- trading -----------------------------------------------------------------------------------

    def account(self) -> Account:
        return self._run(ep.account())

    def place_order(
        self,
        symbol: str,
        side: str,
        type: str,
        size: Number,
        *,
        limit_price: Number | None = None,
        leverage: int | None = None,
        margin_mode: str | None = None,
        reduce_only: bool | None = None,
        time_in_force: str | None = None,
        slippage_bps: int | None = None,
        client_order_id: str | None = None,
        position_id: int | None = None,
    ) -> Order:
        """Place an order; without ``client_order_id`` one is generated so a retry cannot place twice."""
        return self._run(
            ep.place_order(
                symbol,
                side,
                type,
                size,
                limit_price=limit_price,
                leverage=leverage,
                margin_mode=margin_mode,
                reduce_only=reduce_only,
                time_in_force=time_in_force,
                slippage_bps=slippage_bps,
                client_order_id=client_order_id,
                position_id=position_id,
            )
        )

    def orders(
        self,
        *,
        symbol: str | None = None,
        status: str | list[str] | None = None,
        client_order_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Order]:
        return self._run(
            ep.orders(
                symbol=symbol,
                status=status,
                client_order_id=client_order_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    def order(self, order_id: int) -> Order:
        return self._run(ep.order(order_id))

    def cancel_order(self, order_id: int) -> Order:
        return self._run(ep.cancel_order(order_id))

    def positions(self, symbol: str | None = None) -> list[Position]:
        return self._run(ep.positions(symbol))

    def close_position(
        self, position_id: int, size: Number | None = None, *, client_order_id: str | None = None
    ) -> Order:
        """Close all of the position (or ``size`` of it) at market; returns the closing order."""
        return self._run(ep.close_position(position_id, size, client_order_id=client_order_id))

    def adjust_margin(
        self, position_id: int, amount: Number, *, idempotency_key: str | None = None
    ) -> Position:
        return self._run(ep.adjust_margin(position_id, amount, idempotency_key=idempotency_key))

    def set_leverage(self, symbol: str, margin_mode: str, leverage: int) -> LeverageSetting:
        return self._run(ep.set_leverage(symbol, margin_mode, leverage))

    def fills(
        self,
        *,
        symbol: str | None = None,
        order_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Fill]:
        return self._run(ep.fills(symbol=symbol, order_id=order_id, limit=limit, cursor=cursor))

    def funding(
        self,
        *,
        symbol: str | None = None,
        position_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[FundingPayment]:
        """Funding payments, newest first (negative paid, positive received)."""
        return self._run(
            ep.funding(
                symbol=symbol, position_id=position_id, since=since, until=until, limit=limit, cursor=cursor
            )
        )

    def modify_order(
        self, order_id: int, *, size: Number | None = None, limit_price: Number | None = None
    ) -> Order:
        """Change an open limit order's price and/or size (HYPERLIQUID: replaced, ``replaces`` set)."""
        return self._run(ep.modify_order(order_id, size=size, limit_price=limit_price))

    def cancel_all(self, symbol: str | None = None) -> CancelAllResult:
        return self._run(ep.cancel_all(symbol))

    def place_orders(self, orders: list[dict[str, Any]]) -> list[BulkResult]:
        """Batch placement (up to 20): one result per entry, in order."""
        return self._run(ep.place_orders(orders))

    def cancel_orders(self, order_ids: list[int]) -> list[BulkResult]:
        return self._run(ep.cancel_orders(order_ids))

    def schedule_cancel(self, at: datetime | int | None) -> ScheduledCancel:
        """Dead-man's switch: cancel all at ``at`` unless renewed; None clears it."""
        return self._run(ep.schedule_cancel(at))

    def scheduled_cancel(self) -> ScheduledCancel:
        return self._run(ep.scheduled_cancel())

    def add_tpsl(
        self,
        position_id: int,
        type: str,
        trigger_price: Number,
        *,
        size: Number | None = None,
        limit_price: Number | None = None,
    ) -> Tpsl:
        return self._run(ep.add_tpsl(position_id, type, trigger_price, size=size, limit_price=limit_price))

    def tpsl_list(
        self,
        *,
        symbol: str | None = None,
        status: str | list[str] | None = None,
        position_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Tpsl]:
        return self._run(
            ep.tpsl_list(symbol=symbol, status=status, position_id=position_id, limit=limit, cursor=cursor)
        )

    def cancel_tpsl(self, tpsl_id: int) -> Tpsl:
        return self._run(ep.cancel_tpsl(tpsl_id))

    def place_algo_order(
        self,
        type: str,
        symbol: str,
        side: str,
        size: Number,
        *,
        duration_seconds: int | None = None,
        slices: int | None = None,
        randomize: bool | None = None,
        max_child_size: Number | None = None,
        leverage: int | None = None,
        margin_mode: str | None = None,
        slippage_bps: int | None = None,
        client_order_id: str | None = None,
    ) -> AlgoOrder:
        """A TWAP or size-split parent on Hyperliquid; a generated client_order_id makes it retry-safe."""
        return self._run(
            ep.place_algo_order(
                type,
                symbol,
                side,
                size,
                duration_seconds=duration_seconds,
                slices=slices,
                randomize=randomize,
                max_child_size=max_child_size,
                leverage=leverage,
                margin_mode=margin_mode,
                slippage_bps=slippage_bps,
                client_order_id=client_order_id,
            )
        )

    def algo_orders(self, *, limit: int | None = None, cursor: str | None = None) -> Page[AlgoOrder]:
        return self._run(ep.algo_orders(limit=limit, cursor=cursor))

    def algo_order(self, algo_id: int) -> AlgoOrder:
        """The parent with its children."""
        return self._run(ep.algo_order(algo_id))

    def cancel_algo_order(self, algo_id: int) -> AlgoOrder:
        return self._run(ep.cancel_algo_order(algo_id))

    # ---- wallet ------------------------------------------------------------------------------------

    def wallet(self) -> Wallet:
        return self._run(ep.wallet())

    def balance_logs(self, *, limit: int | None = None, cursor: str | None = None) -> Page[BalanceLog]:
        return self._run(ep.balance_logs(limit=limit, cursor=cursor))

    def deposit_addresses(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[DepositAddress]:
        return self._run(ep.deposit_addresses(limit=limit, cursor=cursor))

    def deposit_address(self, chain: str) -> DepositAddress:
        return self._run(ep.deposit_address(chain))

    def deposits(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Deposit]:
        return self._run(ep.deposits(limit=limit, cursor=cursor))

    def withdrawal_addresses(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WithdrawalAddress]:
        return self._run(ep.withdrawal_addresses(limit=limit, cursor=cursor))

    def add_withdrawal_address(self, chain: str, address: str, label: str = "") -> WithdrawalAddress:
        return self._run(ep.add_withdrawal_address(chain, address, label))

    def delete_withdrawal_address(self, address_id: int) -> None:
        return self._run(ep.delete_withdrawal_address(address_id))

    def set_withdrawal_whitelist(self, enabled: bool, totp_code: str) -> bool:
        return self._run(ep.set_withdrawal_whitelist(enabled, totp_code))

    def withdrawals(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Withdrawal]:
        return self._run(ep.withdrawals(limit=limit, cursor=cursor))

    def request_withdrawal(
        self, chain: str, asset: str, address: str, amount: Number, totp_code: str
    ) -> Withdrawal:
        return self._run(ep.request_withdrawal(chain, asset, address, amount, totp_code))

    def withdrawal(self, withdrawal_id: int) -> Withdrawal:
        return self._run(ep.withdrawal(withdrawal_id))

    def cancel_withdrawal(self, withdrawal_id: int) -> Withdrawal:
        return self._run(ep.cancel_withdrawal(withdrawal_id))
